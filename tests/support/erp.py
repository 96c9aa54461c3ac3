"""Factories for ERP-feedback unit tests: a closed-won deal with a real order, and the ERP's events about it.

``Deal`` drives one opportunity through ``orders.decide`` and ``feedback.on_erp_event`` the way the
deal agent does: the state is stored as JSON after every decision and parsed fresh for the next one,
and every output is checked against its Avro contract (pydantic model *and* a fastavro write, as the
agent's encoder does) before the test sees it.
"""

from __future__ import annotations

import datetime as dt
import io
from functools import lru_cache
from typing import Any

import fastavro
import orjson

from app.contracts import default_index
from app.contracts.models import model
from app.domain.changes import Lineage
from app.domain.feedback.fold import on_erp_event
from app.domain.feedback.lifecycle import ErpEvent, ErpKind
from app.domain.orders.deal import DealState
from app.domain.orders.decide import Decision, decide
from app.domain.orders.validation import Policy
from app.domain.outputs import JSON, Output
from app.engine.routes import record, route
from tests.support.deals import NOW, Source, header, line, references

OPP = "opp-1"
ERP_TOPIC = "erp.events.sales-order"


def at(**delta: float) -> dt.datetime:
    """``NOW`` (when the deal closes and the create is emitted) plus ``delta`` (minutes=, hours=, days=)."""
    return NOW + dt.timedelta(**delta)


def ms(when: dt.datetime) -> int:
    return int(when.timestamp() * 1000)


def ship(line_id: str, quantity: str, sku: str | None = None) -> dict[str, str]:
    """One shipped line of an OrderShipped body."""
    sku = sku or {"l1": "SKU-A", "l2": "SKU-B"}.get(line_id, "SKU-X")
    return {"line_id": line_id, "sku": sku, "quantity": quantity}


AS_ORDERED = [ship("l1", "2"), ship("l2", "1")]  # the deal's lines: l1 2 x 100.00, l2 1 x 50.00 (250.00 EUR)


def body(kind: ErpKind, when: dt.datetime, n: int, **fields: Any) -> dict[str, Any]:
    """A JSON-mode ERP event record of ``kind`` (decimals as strings, instants as ISO strings)."""
    iso = when.isoformat()
    defaults: dict[ErpKind, dict[str, Any]] = {
        ErpKind.ACCEPTED: {"order_number": "SO-1", "accepted_amount": "250.00", "currency": "EUR", "accepted_at": iso},
        ErpKind.REJECTED: {"reason_code": "CREDIT_LIMIT", "reason_text": "credit limit exceeded", "retryable": False},
        ErpKind.SHIPPED: {"shipment_id": f"SH-{n}", "lines": AS_ORDERED, "complete": True, "shipped_at": iso},
        ErpKind.INVOICED: {
            "invoice_number": "INV-1",
            "amount": "250.00",
            "tax_amount": "47.50",
            "currency": "EUR",
            "issued_at": iso,
            "due_date": None,
        },
        ErpKind.PAID: {
            "payment_id": f"PAY-{n}",
            "invoice_number": "INV-1",
            "amount": "250.00",
            "currency": "EUR",
            "received_at": iso,
        },
        ErpKind.HOLD_PLACED: {"reason": "overdue invoices", "placed_at": iso},
        ErpKind.HOLD_RELEASED: {"released_at": iso},
        ErpKind.DISPUTED: {
            "invoice_number": "INV-1",
            "disputed_amount": "50.00",
            "currency": "EUR",
            "reason": "damaged goods",
            "disputed_at": iso,
        },
    }
    if kind in (ErpKind.ACTIVATED, ErpKind.CUSTOMER_ACCEPTED):  # what erp_ingest.milestone_event makes of one
        return {"reference": f"M-{n}", "reached_at": ms(when), **fields}
    value = {**defaults[kind], **fields}
    model(f"io.crmerpsync.erp.events.{kind}").model_validate(value)  # a record the ERP could really send
    return value


@lru_cache
def _schema(contract: str):
    return fastavro.parse_schema(default_index().expanded(contract))


def contract_problems(outputs: list[Output]) -> list[str]:
    """Why outputs would not pass the agent's ``prepare`` (contract model, then the Avro encoder)."""
    problems = []
    for out in outputs:
        try:
            where = route(out)
            if where.contract == JSON:  # an internal topic's JSON message: it only has to serialise
                orjson.dumps(record(out))
                continue
            validated = model(where.contract).model_validate(record(out))
            fastavro.schemaless_writer(io.BytesIO(), _schema(where.contract), validated.to_avro())
        except Exception as exc:
            problems.append(f"{type(out).__name__} {out.key}: {type(exc).__name__}: {exc}")
    return problems


class Deal:
    """One opportunity (two lines, 250.00 EUR, closed-won at ``NOW``) and everything said about it."""

    def __init__(self, policy: Policy | None = None, close: bool = True, **header_fields: Any) -> None:
        """``header_fields``: the opportunity's header fields that differ from ``tests.support.deals.header``."""
        self.policy = policy or Policy()
        self.refs = references()
        self.src = Source()
        self.stored: str | None = None  # the deals table entry: JSON, parsed fresh for every decision
        self.outputs: list[Output] = []
        self.erp_offset = 0
        self.creation: Decision | None = None
        if close:
            self.crm("opportunity_line_item", "l1", line(OPP, "prod-a", "2", "100"), now=NOW)
            self.crm("opportunity_line_item", "l2", line(OPP, "prod-b", "1", "50"), now=NOW)
            self.creation = self.crm("opportunity", OPP, header(**header_fields), now=NOW)
            assert self.state.order is not None, "the closed-won deal must produce an order"

    @property
    def state(self) -> DealState | None:
        return DealState.model_validate_json(self.stored) if self.stored else None

    def _record(self, decision: Decision, check: bool) -> Decision:
        self.stored = decision.state.model_dump_json()
        self.outputs += decision.outputs
        if check:
            problems = contract_problems(decision.outputs)
            assert not problems, problems
        return decision

    # --- the CRM side ---------------------------------------------------------------------

    def crm(self, table: str, row_id: str, fields: dict, now: dt.datetime) -> Decision:
        event = self.src.event(OPP, self.src.change(table, row_id, fields))
        return self._record(decide(self.state, event, self.refs, self.policy, now), check=True)

    def header(self, now: dt.datetime, **fields: Any) -> Decision:
        return self.crm("opportunity", OPP, header(**fields), now)

    def recheck(self, now: dt.datetime) -> Decision:
        """What the SLA sweep sends when a deadline falls due."""
        return self._record(decide(self.state, self.src.event(OPP, None), self.refs, self.policy, now), check=True)

    # --- the ERP side ---------------------------------------------------------------------

    def event(self, kind: ErpKind, now: dt.datetime, event_id: str | None = None, **fields: Any) -> ErpEvent:
        self.erp_offset += 1
        n = self.erp_offset
        order = self.state.order if self.state else None
        return ErpEvent(
            event_id=event_id or f"erp-{n}",
            correlation_id=OPP,
            command_id=order.create_command_id if order else None,
            order_number=None if kind is ErpKind.REJECTED else "SO-1",
            occurred_at_ms=ms(now),
            kind=kind,
            body=body(kind, now, n, **fields),
            lineage=Lineage(ERP_TOPIC, 0, 500 + n, 11, ms(now)),
        )

    def feed(self, event: ErpEvent, now: dt.datetime, delivery: str | None = None, check: bool = True) -> Decision:
        """``event`` as re-keyed onto the deal topic (``delivery``: where that copy was read)."""
        if delivery is None:
            self.src.offset += 1
            delivery = f"sync.deal-changes/0/{self.src.offset}"
        return self._record(on_erp_event(self.state, event, delivery, self.policy, now, self.refs), check)

    def erp(self, kind: ErpKind, now: dt.datetime, **fields: Any) -> Decision:
        return self.feed(self.event(kind, now, **fields), now)


# --- reading outputs ------------------------------------------------------------------------


def _values(decision: Decision | list[Output], topic: str) -> list[dict[str, Any]]:
    outputs = decision if isinstance(decision, list) else decision.outputs
    return [record(o) for o in outputs if route(o).topic == topic]


def alerts(decision: Decision | list[Output]) -> list[dict[str, Any]]:
    return _values(decision, "sync.drift-alerts")


def updates(decision: Decision | list[Output]) -> list[dict[str, Any]]:
    return _values(decision, "crm.commands.update")


def commands(decision: Decision | list[Output]) -> list[dict[str, Any]]:
    return _values(decision, "erp.commands.sales-order")


def audits(decision: Decision | list[Output]) -> list[dict[str, Any]]:
    return _values(decision, "sync.audit")


def alert_audits(decision: Decision | list[Output]) -> list[dict[str, Any]]:
    """The audit records of drift alerts (not of the commands and updates sent with them)."""
    return [a for a in audits(decision) if a["action"].startswith("ALERT_")]


def statuses(update: dict[str, Any]) -> tuple[str, str, str, str]:
    """(order, fulfilment, invoice, payment) status of one CRM update."""
    return (update["order_status"], update["fulfilment_status"], update["invoice_status"], update["payment_status"])


def rejection_exception(opp: str, raised: dt.datetime) -> dict[str, Any]:
    """An open ERP_REJECTED ExceptionRecord (Avro mode: ``raised_at`` a datetime), 4 h SLA, order-management."""
    return {
        "exception_id": f"{opp}:ERP_REJECTED:evt-9",
        "reason_code": "ERP_REJECTED",
        "exception_type": "ERP_REJECTION",
        "severity": "HIGH",
        "correlation_id": opp,
        "amount_at_risk": None,
        "currency": None,
        "customer_facing": True,
        "owner_team": "order-management",
        "sla_minutes": 240,
        "detail": "ERP CREDIT_LIMIT",
        "lineage": {"source_topic": ERP_TOPIC, "source_partition": 0, "source_offset": 9, "schema_id": None,
                    "source_position": None, "source_ts": None},
        "original_key": None, "original_value": None, "original_headers": {},
        "raised_at": raised, "replay_of": None, "replay_count": 0, "status": "OPEN",
    }  # fmt: skip
