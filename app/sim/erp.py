"""ERP order events as an ERP integration would publish them (``ErpOrderEvent`` and ``ErpMilestoneEvent``
records, Avro-ready values).

Used by the tests and the ERP simulator: each builder returns the record for one event, with the
union member given in fastavro's tuple notation. ``at=`` sets occurred_at and the body's own time
(accepted_at, shipped_at, ...); without it both are now.
"""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal
from typing import Any

NS = "io.crmerpsync.erp.events"
_ids = itertools.count(1)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _when(kw: dict[str, Any]) -> dt.datetime:
    """The event's own time (accepted_at, shipped_at, ...): the ``at`` given for occurred_at, else now."""
    return kw.get("at") or _now()


def event(opp: str, kind: str, body: dict[str, Any], command_id: str | None = None, order_number: str | None = None,
          event_id: str | None = None, at: dt.datetime | None = None) -> dict[str, Any]:  # fmt: skip
    return {
        "event_id": event_id or f"erp-{next(_ids)}-{kind}-{opp}",
        "correlation_id": opp,
        "command_id": command_id,
        "order_number": order_number,
        "occurred_at": at or _now(),
        "erp_system": "erp-sim",
        "event": (f"{NS}.{kind}", body),
    }


def accepted(opp: str, amount: Decimal, currency: str, order_number: str, command_id: str | None = None, **kw):
    body = {"order_number": order_number, "accepted_amount": amount, "currency": currency, "accepted_at": _when(kw)}
    return event(opp, "OrderAccepted", body, command_id, order_number, **kw)


def rejected(opp: str, reason_code: str, reason_text: str, retryable: bool = False, **kw):
    return event(
        opp, "OrderRejected", {"reason_code": reason_code, "reason_text": reason_text, "retryable": retryable}, **kw
    )


def shipped(opp: str, shipment_id: str, lines: list[tuple[str, str, Decimal]], complete: bool, **kw):
    body = {
        "shipment_id": shipment_id,
        "lines": [{"line_id": line, "sku": sku, "quantity": qty} for line, sku, qty in lines],
        "complete": complete,
        "shipped_at": _when(kw),
    }
    return event(opp, "OrderShipped", body, **kw)


def invoiced(opp: str, invoice_number: str, amount: Decimal, currency: str, tax: Decimal = Decimal("0"),
             due: dt.date | None = None, **kw):  # fmt: skip
    body = {
        "invoice_number": invoice_number,
        "amount": amount,
        "tax_amount": tax,
        "currency": currency,
        "issued_at": _when(kw),
        "due_date": due,
    }
    return event(opp, "OrderInvoiced", body, **kw)


def paid(opp: str, payment_id: str, invoice_number: str, amount: Decimal, currency: str, **kw):
    body = {
        "payment_id": payment_id,
        "invoice_number": invoice_number,
        "amount": amount,
        "currency": currency,
        "received_at": _when(kw),
    }
    return event(opp, "PaymentReceived", body, **kw)


def credit_hold(opp: str, reason: str, **kw):
    return event(opp, "CreditHoldPlaced", {"reason": reason, "placed_at": _when(kw)}, **kw)


def hold_released(opp: str, **kw):
    return event(opp, "CreditHoldReleased", {"released_at": _when(kw)}, **kw)


def disputed(opp: str, invoice_number: str, amount: Decimal, currency: str, reason: str, **kw):
    body = {
        "invoice_number": invoice_number,
        "disputed_amount": amount,
        "currency": currency,
        "reason": reason,
        "disputed_at": _when(kw),
    }
    return event(opp, "InvoiceDisputed", body, **kw)


def milestone(opp: str, kind: str, reference: str, command_id: str | None = None, order_number: str | None = None,
              event_id: str | None = None, at: dt.datetime | None = None) -> dict[str, Any]:  # fmt: skip
    """An ``ErpMilestoneEvent`` record (``kind``: SERVICE_ACTIVATED or CUSTOMER_ACCEPTED)."""
    return {
        "event_id": event_id or f"erp-{next(_ids)}-{kind}-{opp}",
        "correlation_id": opp,
        "command_id": command_id,
        "order_number": order_number,
        "occurred_at": at or _now(),
        "erp_system": "erp-sim",
        "milestone": kind,
        "reference": reference,
        "recorded_by": "erp-sim",
    }


def kind_of(record: dict[str, Any]) -> str:
    """The event type of an order or milestone record: its union branch's short name, or its milestone."""
    return record["event"][0].rsplit(".", 1)[1] if "event" in record else record["milestone"]
