"""The ERP simulator: upserts by command id, plans a reproducible lifecycle, produces each fault in
the share asked for, and every fault it is told to make opens the drift alert it stands for."""

from __future__ import annotations

import ast
import datetime as dt
import math
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest

from app.contracts.models import model
from app.domain.feedback.fold import on_erp_event
from app.domain.feedback.lifecycle import ErpKind
from app.domain.orders.deal import DealState
from app.domain.orders.validation import Policy
from app.engine import routes
from app.settings import REPO_ROOT
from app.sim.erp_system import CANCEL, CREATE, Command, ErpConfig, ErpSystem
from tests.support.deals import NOW
from tests.support.erp import OPP, Deal, alerts, commands, updates
from tests.support.service import avro_roundtrip, erp_event

T0 = NOW.timestamp()
EVENT = "io.crmerpsync.erp.events.ErpOrderEvent"
MILESTONE_KINDS = {"SERVICE_ACTIVATED": "ServiceActivated", "CUSTOMER_ACCEPTED": "CustomerAccepted"}


def create(opp: str = "opp-1", command_id: str | None = None, amount: str = "250.00", lines=None,
           schedule: str = "UPFRONT") -> dict[str, Any]:  # fmt: skip
    """A create as the worker's decoder hands it over (Avro union as a (name, record) tuple)."""
    lines = lines or [("l1", "SKU-A", "2", "200.00"), ("l2", "SKU-B", "1", "50.00")]
    body = {
        "opportunity_id": opp,
        "account_id": "acc-1",
        "customer_number": "C-1001",
        "currency": "EUR",
        "amount": Decimal(amount),
        "billing_schedule": schedule,
        "lines": [
            {"line_id": i, "sku": sku, "quantity": Decimal(q), "net_amount": Decimal(net), "currency": "EUR"}
            for i, sku, q, net in lines
        ],
    }
    envelope = {"command_id": command_id or f"{opp}:create:lsn:1", "correlation_id": opp}
    return {"envelope": envelope, "command": (f"io.crmerpsync.erp.commands.{CREATE}", body)}


def cancel(opp: str = "opp-1", command_id: str = "opp-1:cancel:lsn:9") -> dict[str, Any]:
    body = {"opportunity_id": opp, "order_number": None, "reason": "DEAL_REOPENED"}
    return {"envelope": {"command_id": command_id}, "command": (f"io.crmerpsync.erp.commands.{CANCEL}", body)}


def deliver_all(erp: ErpSystem, until: float | None = None) -> list[tuple[float, dict[str, Any]]]:
    out = []
    while erp.pending() and (until is None or erp.next_due() <= until):
        t = erp.next_due()
        out += [(t, e) for e in erp.due(t)]
    return out


def kinds(events) -> list[str]:
    return [e["event"][0].rsplit(".", 1)[1] for _, e in events if "event" in e]


def close_to(observed: float, share: float, n: int) -> bool:
    return abs(observed - share) <= 4 * math.sqrt(share * (1 - share) / n) + 0.005


# --- the order book ---------------------------------------------------------------------------


def test_a_clean_order_runs_accepted_shipped_invoiced_paid_in_time():
    erp = ErpSystem(1, ErpConfig.clean(partial_ship_rate=0.0, jitter=0.0))
    planned = erp.on_command(create(), T0)
    assert [round(d.delay, 3) for d in planned] == [1.0, 3.0, 5.0, 7.0]
    events = deliver_all(erp)
    assert kinds(events) == ["OrderAccepted", "OrderShipped", "OrderInvoiced", "PaymentReceived"]
    accepted, shipped, invoiced, paid = (e for _, e in events)
    assert {e["command_id"] for _, e in events} == {"opp-1:create:lsn:1"}
    assert len({e["event_id"] for _, e in events}) == 4 and {e["order_number"] for _, e in events} == {"SO-000001"}
    assert accepted["event"][1]["accepted_amount"] == Decimal("250.00")
    assert [(ln["line_id"], ln["quantity"]) for ln in shipped["event"][1]["lines"]] == [("l1", 2), ("l2", 1)]
    assert shipped["event"][1]["complete"] is True
    assert invoiced["event"][1]["amount"] == paid["event"][1]["amount"] == Decimal("250.00")
    assert invoiced["event"][1]["tax_amount"] == Decimal("47.50")
    assert accepted["occurred_at"] == dt.datetime.fromtimestamp(T0 + 1, dt.UTC)


def test_a_create_sent_again_with_its_command_id_re_acknowledges_and_opens_no_second_order():
    erp = ErpSystem(1, ErpConfig.clean())
    first = erp.on_command(create(), T0)
    deliver_all(erp)
    again = erp.on_command(create(), T0 + 60)  # the service's auto-heal: same command id
    assert erp.summary.orders == 1 and len(erp.orders) == 1
    assert erp.summary.resent[CREATE] == 1
    assert [d.event["event_id"] for d in again] == [first[0].event["event_id"]]  # the same acceptance: a duplicate
    assert kinds(deliver_all(erp)) == ["OrderAccepted"]
    other = erp.on_command(create(command_id="opp-1:create:lsn:7"), T0 + 90)  # closed won again: a new order
    assert erp.summary.orders == 2 and other[0].event["order_number"] == "SO-000002"


def test_rejections_non_retryable_repeat_themselves_retryable_ones_are_tried_again():
    erp = ErpSystem(1, ErpConfig.clean(reject_rate=1.0, retryable_share=0.0))
    (rejected,) = erp.on_command(create(), T0)
    assert rejected.kind == "OrderRejected" and rejected.event["event"][1]["retryable"] is False
    (again,) = erp.on_command(create(), T0 + 10)
    assert again.event["event_id"] == rejected.event["event_id"]

    erp = ErpSystem(1, ErpConfig.clean(reject_rate=1.0, retryable_share=1.0))
    (first,) = erp.on_command(create(), T0)
    assert first.event["event"][1]["retryable"] is True
    (second,) = erp.on_command(create(), T0 + 10)  # re-sent by the retry tier: decided afresh
    assert second.event["event_id"] != first.event["event_id"] and erp.orders["opp-1:create:lsn:1"].attempts == 2
    assert erp.summary.orders == 1


def test_a_cancel_withdraws_what_was_not_delivered_yet_and_is_idempotent():
    erp = ErpSystem(1, ErpConfig.clean(jitter=0.0))
    erp.on_command(create(), T0)
    early = deliver_all(erp, until=T0 + 1.5)
    assert kinds(early) == ["OrderAccepted"]
    assert erp.on_command(cancel(), T0 + 2) == []
    assert erp.on_command(cancel(), T0 + 3) == [] and erp.summary.resent[CANCEL] == 1
    assert deliver_all(erp) == [] and erp.summary.withdrawn == 3 and erp.summary.cancelled == 1


def test_an_amend_re_confirms_the_order_and_re_plans_what_has_not_happened():
    erp = ErpSystem(1, ErpConfig.clean(jitter=0.0))
    erp.on_command(create(), T0)
    deliver_all(erp, until=T0 + 3.5)  # accepted and shipped
    amend = create(amount="300.00")
    amend["envelope"]["command_id"] = "opp-1:amend:lsn:5"
    name, body = amend["command"]
    amend["command"] = (name.replace(CREATE, "AmendSalesOrder"), body)
    planned = erp.on_command(amend, T0 + 4)
    assert [d.kind for d in planned] == ["OrderAccepted", "OrderInvoiced", "PaymentReceived"]
    assert planned[0].event["event"][1]["accepted_amount"] == Decimal("300.00")
    assert planned[1].event["event"][1]["amount"] == Decimal("300.00")
    assert kinds(deliver_all(erp)) == ["OrderAccepted", "OrderInvoiced", "PaymentReceived"]  # the old ones withdrawn
    assert erp.on_command(amend, T0 + 20) == [] and erp.summary.amended == 1


def test_the_same_seed_and_commands_give_the_same_events():
    def run(seed):
        erp = ErpSystem(seed, ErpConfig(drop_rate=0.1, ignore_rate=0.1))
        for n in range(50):
            erp.on_command(create(f"opp-{n}"), T0 + n)
        return [(t, e["event_id"], e["event"]) for t, e in deliver_all(erp)]

    assert run(4) == run(4)
    assert run(4) != run(5)


def test_the_json_summary_and_commands_in_the_services_json_form():
    erp = ErpSystem(1, ErpConfig.clean())
    value = {  # as decide() outputs it: JSON-mode, union branch under "-type"
        "envelope": {"command_id": "opp-9:create:lsn:3"},
        "command": {"-type": f"io.crmerpsync.erp.commands.{CREATE}", "opportunity_id": "opp-9", "amount": "10.00",
                    "currency": "USD", "lines": [{"line_id": "x", "sku": "S", "quantity": "1", "net_amount": "10"}]},
    }  # fmt: skip
    assert Command.parse(value) == Command(
        "opp-9:create:lsn:3", CREATE, "opp-9", Decimal("10.00"), "USD", (Command.parse(value).lines[0],)
    )
    erp.on_command(value, T0)
    deliver_all(erp)
    data = erp.summary.to_json()
    assert data["orders"] == 1 and data["events_delivered"]["PaymentReceived"] == 1
    assert "orders" in erp.summary.render()


# --- rates ------------------------------------------------------------------------------------


def test_each_rate_produces_its_fault_in_about_that_share():
    n = 1500
    config = ErpConfig(reject_rate=0.1, retryable_share=0.5, ignore_rate=0.05, amount_drift_rate=0.2,
                       invoice_drift_rate=0.15, line_drift_rate=0.1, drop_rate=0.05, duplicate_rate=0.05,
                       overpay_rate=0.1, out_of_order_rate=0.1, phantom_rate=0.05, jitter=0.0)  # fmt: skip
    erp = ErpSystem(3, config)
    amounts = {}
    for i in range(n):
        value = create(f"opp-{i}")
        amounts[f"opp-{i}"] = Decimal("250.00")
        erp.on_command(value, T0)
    events = deliver_all(erp)
    s = erp.summary
    assert close_to(s.outcomes["ignored"] / n, 0.05, n)
    answered = n - s.outcomes["ignored"]
    assert close_to(s.outcomes["rejected"] / answered, 0.1, answered)
    rejected = [e for _, e in events if e["event"][0].endswith("OrderRejected")]
    assert close_to(sum(e["event"][1]["retryable"] for e in rejected) / len(rejected), 0.5, len(rejected))
    accepted_orders = s.outcomes["accepted"]
    for fault, share in (("amount_drift", 0.2), ("invoice_drift", 0.15), ("line_drift", 0.1), ("overpaid", 0.1),
                         ("out_of_order", 0.1)):  # fmt: skip
        assert close_to(s.faults[fault] / accepted_orders, share, accepted_orders), fault
    assert close_to(s.faults["phantom"] / n, 0.05, n)
    planned = sum(s.scheduled.values()) + sum(s.dropped.values())
    assert close_to(sum(s.dropped.values()) / planned, 0.05, planned)

    # the shapes: a drifted acceptance is off by at least 1.00, a drifted line by one unit
    accepts = [e for _, e in events if e["event"][0].endswith("OrderAccepted") and e["command_id"]]
    off = [e for e in accepts if e["event"][1]["accepted_amount"] != amounts[e["correlation_id"]]]
    assert off and all(abs(e["event"][1]["accepted_amount"] - Decimal("250.00")) >= 1 for e in off)
    shipped = [e for _, e in events if e["event"][0].endswith("OrderShipped")]
    assert any({ln["quantity"] for ln in e["event"][1]["lines"] if ln["line_id"] == "l2"} - {1} for e in shipped)
    duplicated = Counter(e["event_id"] for _, e in events)
    assert close_to(sum(c > 1 for c in duplicated.values()) / len(duplicated), 0.05, len(duplicated))


def test_every_event_fits_the_contract_erp_ingest_reads():
    config = ErpConfig(reject_rate=0.2, hold_rate=0.3, dispute_rate=0.3, partial_ship_rate=0.5, phantom_rate=0.2)
    erp = ErpSystem(8, config)
    for i in range(60):
        erp.on_command(create(f"opp-{i}", schedule="MILESTONE" if i % 3 == 0 else "UPFRONT"), T0 + i)
    events = deliver_all(erp)
    milestones = {str(e["milestone"]) for _, e in events if "milestone" in e}
    assert set(kinds(events)) | {MILESTONE_KINDS[m] for m in milestones} == {k.value for k in ErpKind}
    for n, (_, record) in enumerate(events):
        event = erp_event(record, n)  # through the topic's contract and erp_ingest's mapping
        if "milestone" in record:
            assert event.kind.value == MILESTONE_KINDS[record["milestone"]]
            continue
        decoded = avro_roundtrip(EVENT, record)  # what erp_ingest's decoder returns
        name, body = decoded["event"]
        model(name).model_validate(body)
        assert event.correlation_id and event.kind.value == name.rsplit(".", 1)[1]


# --- every drift alert kind, on purpose -----------------------------------------------------


class Run:
    """One closed-won deal (tests.support.erp.Deal: opp-1, 250.00 EUR, l1 2 x 100, l2 1 x 50) and the ERP."""

    def __init__(self, config: ErpConfig, seed: int = 1, **header: Any) -> None:
        self.deal = Deal(Policy(), **header)
        self.erp = ErpSystem(seed, config)
        self.sent = 0
        self.n = 0
        self.other: list[dict[str, Any]] = []  # outputs of events for other opportunities
        self.commands(T0)

    def commands(self, t: float) -> None:
        for c in commands(self.deal.outputs[self.sent :]):
            self.erp.on_command(c, t)
        self.sent = len(self.deal.outputs)

    def deliver(self, until: float | None = None) -> None:
        for t, record in deliver_all(self.erp, until):
            self.n += 1
            now = dt.datetime.fromtimestamp(t, dt.UTC)
            event = erp_event(record, self.n)
            if event.correlation_id == OPP:
                self.deal.feed(event, now)
            else:
                decision = on_erp_event(None, event, f"deal/{self.n}", Policy(), now)
                self.other += decision.outputs
        self.commands(until or T0)

    def recheck(self, after: dt.timedelta) -> None:
        now = NOW + after
        self.deal.recheck(now)
        self.commands(now.timestamp())
        self.deliver(now.timestamp() + 60)

    def alerts(self) -> list[tuple[str, str, str]]:
        """(kind, finding key, state) of every alert record, in order (alert id: <opp>:<finding key>:<n>)."""
        out = alerts(self.deal.outputs)
        return [(a["kind"], a["alert_id"].split(":", 1)[1].rsplit(":", 1)[0], a["state"]) for a in out]


CLEAN = {"jitter": 0.0, "partial_ship_rate": 0.0}


def test_a_clean_erp_raises_no_drift_and_the_crm_sees_paid():
    run = Run(ErpConfig.clean(**CLEAN))
    run.deliver()
    assert run.alerts() == []
    assert updates(run.deal.outputs)[-1]["order_status"] == "PAID"


@pytest.mark.parametrize(
    "fault,expected",
    [
        ("amount_drift_rate", [("AMOUNT_MISMATCH", "amount:accepted", "OPEN")]),
        ("invoice_drift_rate", [("AMOUNT_MISMATCH", "amount:invoiced", "OPEN")]),
        ("line_drift_rate", [("LINE_MISMATCH", "lines", "OPEN")]),
        ("overpay_rate", [("LIFECYCLE_GAP", "gap:overpaid", "OPEN")]),
    ],
)
def test_a_drift_fault_opens_its_alert(fault, expected):
    run = Run(ErpConfig.clean(**CLEAN, **{fault: 1.0}))
    run.deliver()
    assert run.alerts() == expected


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_out_of_order_delivery_opens_a_lifecycle_gap_that_the_late_event_resolves(seed):
    run = Run(ErpConfig.clean(**CLEAN, out_of_order_rate=1.0), seed)
    run.deliver()
    (kind, key, _), (_, key2, state) = run.alerts()
    assert (kind, state) == ("LIFECYCLE_GAP", "RESOLVED") and key == key2 in ("gap:not-accepted", "gap:overpaid")
    assert updates(run.deal.outputs)[-1]["order_status"] == "PAID"


def test_a_milestone_billed_order_is_activated_and_accepted_before_its_invoice_and_the_crm_sees_both():
    run = Run(ErpConfig.clean(**CLEAN), billing_schedule="MILESTONE")
    run.deliver()
    assert run.alerts() == []
    last = updates(run.deal.outputs)[-1]
    assert last["order_status"] == "PAID" and last["service_activated_at"] and last["customer_accepted_at"]
    assert run.erp.summary.delivered["SERVICE_ACTIVATED"] == run.erp.summary.delivered["CUSTOMER_ACCEPTED"] == 1


def test_an_invoice_before_the_customer_accepts_is_a_lifecycle_gap_the_acceptance_resolves():
    run = Run(ErpConfig.clean(**CLEAN, early_invoice_rate=1.0), billing_schedule="MILESTONE")
    run.deliver()
    assert run.alerts() == [
        ("LIFECYCLE_GAP", "gap:invoiced-before-acceptance", "OPEN"),
        ("LIFECYCLE_GAP", "gap:invoiced-before-acceptance", "RESOLVED"),
    ]
    assert run.erp.summary.faults["early_invoice"] == 1


def test_an_upfront_order_has_no_milestones_and_an_early_invoice_fault_does_not_apply():
    run = Run(ErpConfig.clean(**CLEAN, early_invoice_rate=1.0))
    run.deliver()
    assert run.alerts() == [] and "early_invoice" not in run.erp.summary.faults
    assert "SERVICE_ACTIVATED" not in run.erp.summary.delivered


def test_an_order_the_erp_ignores_is_re_issued_once_then_alerted_as_missing():
    run = Run(ErpConfig.clean(**CLEAN, ignore_rate=1.0))
    run.deliver()
    run.recheck(dt.timedelta(minutes=16))  # auto-heal: the same create again; ignored again
    assert run.erp.summary.resent[CREATE] == 1 and run.erp.summary.orders == 1
    run.recheck(dt.timedelta(minutes=32))
    assert run.alerts() == [("MISSING_EVENT", "missing:accepted", "OPEN")]


def test_dropped_events_are_alerted_as_missing_and_a_lost_acceptance_is_healed_by_the_resent_create():
    run = Run(ErpConfig.clean(**CLEAN, drop_rate=1.0))
    run.deliver()
    assert run.erp.summary.delivered.total() == 0
    run.recheck(dt.timedelta(minutes=16))  # re-issued create: the ERP re-acknowledges (same event id)
    assert updates(run.deal.outputs)[-1]["order_status"] == "ACCEPTED"
    run.recheck(dt.timedelta(days=8))
    assert run.alerts() == [("MISSING_EVENT", "missing:shipped", "OPEN")]


def test_an_order_the_service_never_commanded_is_a_lifecycle_gap():
    run = Run(ErpConfig.clean(**CLEAN, phantom_rate=1.0))
    run.deliver()
    gaps = [(a["kind"], a["alert_id"]) for a in alerts(run.other)]
    assert gaps == [("LIFECYCLE_GAP", "opp-phantom-1:gap:unknown-order:1")]


def test_a_cancelled_order_that_still_ships_is_a_lifecycle_gap():
    run = Run(ErpConfig.clean(**CLEAN, ship_after_cancel_rate=1.0))
    run.deliver(until=T0 + 1.5)  # accepted
    run.deal.header(NOW + dt.timedelta(seconds=2), stage="NEGOTIATION")  # reopened in the CRM: a cancel
    run.commands(T0 + 2)
    assert run.erp.summary.cancelled == 1
    run.deliver()
    assert ("LIFECYCLE_GAP", "gap:cancelled", "OPEN") in run.alerts()
    assert run.erp.summary.faults["shipped_after_cancel"] == 2  # shipped and invoiced


def test_a_rejection_raises_an_exception_not_drift():
    run = Run(ErpConfig.clean(**CLEAN, reject_rate=1.0, retryable_share=0.0))
    run.deliver()
    assert run.alerts() == []
    assert updates(run.deal.outputs)[-1]["order_status"] == "REJECTED"
    exceptions = [routes.record(o) for o in run.deal.outputs if routes.route(o).topic == "sync.exceptions"]
    assert [e["reason_code"] for e in exceptions] == ["ERP_REJECTED"]
    assert DealState.model_validate_json(run.deal.stored).erp.rejected == "CREDIT_LIMIT"


# --- purity -------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", ["app/sim/crm.py", "app/sim/erp_system.py", "app/sim/erp.py", "app/sim/debezium.py"])
def test_the_simulators_decisions_need_no_kafka_registry_or_clock(module):
    tree = ast.parse((REPO_ROOT / module).read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not {n for n in names if n.split(".")[0] in ("confluent_kafka", "faust", "aiokafka", "httpx", "time")}
    assert not {n for n in names if n.startswith(("app.ops", "app.agents", "app.engine.runtime", "app.state"))}
