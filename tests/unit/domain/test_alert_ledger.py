"""The drift alert ledger without Kafka: open, acknowledge, escalate once, resolve by hand or by parity."""

from __future__ import annotations

import datetime as dt

import pytest

from app.domain import alert_ledger as rules
from app.domain.alert_ledger import Action, Status
from app.domain.exceptions.escalation import ALERT_SLA_MINUTES, load
from app.domain.fx import Rates
from app.domain.outputs import Escalation
from app.engine.routes import record, route
from app.flows import alert_ledger as flow
from app.readmodels import alert_ledger as readmodel
from app.settings import REPO_ROOT
from tests.support.erp import contract_problems

T0 = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC)
ROUTES = load(REPO_ROOT / "app" / "rules" / "escalation.toml")
RATES = Rates("EUR", {})
ALERT_ID = "opp-1:amount:accepted:1"


def opened(amount: str = "60000.00", severity: str = "HIGH") -> dict:
    return {
        "alert_id": ALERT_ID, "kind": "AMOUNT_MISMATCH", "state": "OPEN", "severity": severity,
        "correlation_id": "opp-1", "customer_id": "acc-1", "order_number": "SO-1", "amount_at_risk": amount,
        "currency": "EUR", "expected": "250.00 EUR", "observed": "260.00 EUR", "detail": "amounts differ",
        "suggested_owner": "deal-desk", "opened_at": T0.isoformat(), "resolved_at": None,
        "observed_at": T0.isoformat(),
    }  # fmt: skip


def action(kind: str, n: int = 1, note: str = "looked at it") -> Action:
    return Action(action_id=f"a-{n}", alert_id=ALERT_ID, action=kind, actor="erika", note=note,
                  acted_at=T0.isoformat())  # fmt: skip


class Ledger:
    """The flow over in-memory tables, as the worker runs it."""

    def __init__(self) -> None:
        self.tables = {flow.LEDGER: {}, flow.DUE: {}}
        self.outputs: list = []

    def feed(self, message: dict, now: dt.datetime) -> None:
        ctx = flow.Context(ROUTES, dict(ALERT_SLA_MINUTES), RATES, now, dt.timedelta(days=7))
        step = flow.step(self.tables, ALERT_ID.encode(), message, ctx)
        for w in step.writes:
            if w.value is None:
                self.tables[w.table].pop(w.key, None)
            else:
                self.tables[w.table][w.key] = w.value
        assert not contract_problems(step.outputs), contract_problems(step.outputs)
        self.outputs += step.outputs

    @property
    def row(self) -> rules.Row | None:
        raw = self.tables[flow.LEDGER].get(ALERT_ID.encode())
        return rules.Row.model_validate_json(raw) if raw else None

    def due(self) -> int | None:
        raw = self.tables[flow.DUE].get(ALERT_ID.encode())
        return int(raw) if raw else None


def test_an_open_alert_nobody_acknowledges_is_escalated_once_after_the_sla_of_its_severity():
    ledger = Ledger()
    ledger.feed({"alert": opened()}, T0)
    assert ledger.row.status is Status.OPEN and ledger.due() == int((T0 + dt.timedelta(hours=4)).timestamp() * 1000)
    ledger.feed({"check": True}, T0 + dt.timedelta(hours=3))
    assert ledger.outputs == []
    ledger.feed({"check": True}, T0 + dt.timedelta(hours=4, minutes=30))
    [esc, audit] = ledger.outputs
    assert isinstance(esc, Escalation) and route(esc).topic == "sync.escalations"
    value = record(esc)
    assert (value["alert_id"], value["exception_id"], value["reason_code"]) == (ALERT_ID, None, "AMOUNT_MISMATCH")
    assert (value["route_team"], value["mode"], value["overdue_minutes"]) == ("revops", "PAGE", 30)  # big drift
    assert record(audit)["action"] == "ESCALATED"
    ledger.feed({"check": True}, T0 + dt.timedelta(hours=6))
    assert len(ledger.outputs) == 2 and ledger.due() is None  # once


def test_a_small_drift_goes_to_its_owner_as_a_ticket():
    ledger = Ledger()
    ledger.feed({"alert": opened("10.00")}, T0)
    ledger.feed({"check": True}, T0 + dt.timedelta(hours=5))
    assert (record(ledger.outputs[0])["route_team"], record(ledger.outputs[0])["mode"]) == ("deal-desk", "TICKET")


def test_an_acknowledged_alert_is_not_escalated_and_a_resolution_by_hand_keeps_who_and_why():
    ledger = Ledger()
    ledger.feed({"alert": opened()}, T0)
    ledger.feed({"action": action("ACKNOWLEDGE").model_dump()}, T0 + dt.timedelta(minutes=5))
    assert ledger.row.status is Status.ACKNOWLEDGED and ledger.due() is None
    ledger.feed({"check": True}, T0 + dt.timedelta(days=1))
    assert ledger.outputs == []
    ledger.feed({"action": action("RESOLVE", 2, "credit note issued").model_dump()}, T0 + dt.timedelta(hours=1))
    row = ledger.row
    assert (row.status, row.resolved_by, row.resolution_note) == (Status.RESOLVED, "erika", "credit note issued")
    assert [a.action for a in row.actions] == ["ACKNOWLEDGE", "RESOLVE"]
    ledger.feed({"action": action("RESOLVE", 2).model_dump()}, T0 + dt.timedelta(hours=2))  # the same action again
    assert len(ledger.row.actions) == 2
    # parity restored later: the operator's resolution stands
    ledger.feed({"alert": {**opened(), "state": "RESOLVED", "resolved_at": T0.isoformat()}}, T0 + dt.timedelta(hours=3))
    assert ledger.row.resolved_by == "erika"


def test_the_service_resolving_it_closes_it_and_the_row_goes_after_the_retention():
    ledger = Ledger()
    ledger.feed({"alert": opened()}, T0)
    ledger.feed({"alert": {**opened(), "state": "RESOLVED", "detail": "parity restored"}}, T0 + dt.timedelta(hours=1))
    assert (ledger.row.status, ledger.row.resolved_by) == (Status.RESOLVED, "crm-erp-sync")
    assert ledger.due() == int((T0 + dt.timedelta(hours=1, days=7)).timestamp() * 1000)
    ledger.feed({"check": True}, T0 + dt.timedelta(days=8))
    assert ledger.row is None and ledger.due() is None


def test_an_action_for_an_alert_the_ledger_does_not_hold_keeps_nothing():
    ledger = Ledger()
    ledger.feed({"action": action("RESOLVE").model_dump()}, T0)
    assert ledger.row is None


def test_operators_actions_are_refused_when_they_do_not_apply_and_carry_an_audit_record():
    now = T0 + dt.timedelta(hours=1)
    row = rules.on_alert(None, opened(), T0)
    with pytest.raises(readmodel.Refused, match="not in the alert ledger"):
        readmodel.act({}, ALERT_ID, "RESOLVE", "erika", "x", now)
    outputs = readmodel.act({ALERT_ID: row}, ALERT_ID, "ACKNOWLEDGE", "erika", "on it", now)
    assert not contract_problems(outputs)
    act, audit = (record(o) for o in outputs)
    assert (act["action"], act["actor"], act["note"]) == ("ACKNOWLEDGE", "erika", "on it")
    assert (audit["action"], audit["actor"], audit["actor_kind"]) == ("ALERT_ACKNOWLEDGED", "erika", "OPERATOR")
    acked = rules.on_action(row, rules.Action.model_validate(act), now)
    with pytest.raises(readmodel.Refused, match="already acknowledged"):
        readmodel.act({ALERT_ID: acked}, ALERT_ID, "ACKNOWLEDGE", "erika", "again", now)
    done = rules.on_action(acked, action("RESOLVE", 9), now)
    with pytest.raises(readmodel.Refused, match="already resolved"):
        readmodel.act({ALERT_ID: done}, ALERT_ID, "RESOLVE", "erika", "again", now)
    text = readmodel.render_table(readmodel.select({ALERT_ID: done}), int(now.timestamp() * 1000))
    assert (
        ALERT_ID in text
        and "RESOLVED" in text
        and ALERT_ID not in readmodel.render_table(readmodel.select({ALERT_ID: done}, open_only=True), 0)
    )
