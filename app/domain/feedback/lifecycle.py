"""What the ERP has reported about a deal's order, and the SLAs it is held to.

Kept inside the deal's state (``DealState.erp``), next to what the CRM committed, so a single
partition owns both sides of a deal and parity is judged without a join. No Faust, no I/O.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.domain.changes import Lineage


class ErpKind(StrEnum):
    """The ERP event types, by their contract's short name."""

    ACCEPTED = "OrderAccepted"
    REJECTED = "OrderRejected"
    SHIPPED = "OrderShipped"
    INVOICED = "OrderInvoiced"
    PAID = "PaymentReceived"
    HOLD_PLACED = "CreditHoldPlaced"
    HOLD_RELEASED = "CreditHoldReleased"
    DISPUTED = "InvoiceDisputed"
    ACTIVATED = "ServiceActivated"  # the milestone topic's SERVICE_ACTIVATED (erp.events.milestone)
    CUSTOMER_ACCEPTED = "CustomerAccepted"  # its CUSTOMER_ACCEPTED


@dataclass(frozen=True, slots=True)
class ErpEvent:
    """One ERP order event as the domain sees it (``body``: the event record, JSON-mode values)."""

    event_id: str
    correlation_id: str
    command_id: str | None
    order_number: str | None
    occurred_at_ms: int
    kind: ErpKind
    body: dict[str, Any]
    lineage: Lineage


@dataclass(frozen=True, slots=True)
class Slas:
    """How long each ERP step may take before its absence is drift (configurable per flow)."""

    accept: dt.timedelta = dt.timedelta(minutes=15)  # after the create command
    ship: dt.timedelta = dt.timedelta(days=7)  # full shipment after acceptance
    invoice: dt.timedelta = dt.timedelta(days=2)  # after full shipment
    payment: dt.timedelta = dt.timedelta(days=30)  # after invoicing, when the invoice has no due date
    payment_grace: dt.timedelta = dt.timedelta(days=3)  # after the invoice's due date
    auto_heal: bool = True  # re-issue a create once (same command id) before alerting on acceptance
    # billing schedules whose invoices wait for the customer's acceptance (an earlier one is a gap)
    acceptance_billing: frozenset[str] = frozenset({"MILESTONE"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Applied(_Model):
    """Lineage of one ERP event applied to the order."""

    event_id: str
    kind: str
    occurred_at_ms: int
    coordinates: str


class AlertRef(_Model):
    """An open drift alert: what its resolved record must repeat."""

    alert_id: str
    opened_at_ms: int
    kind: str
    severity: str


class ErpView(_Model):
    """The ERP's side of one order, built from its events in any arrival order."""

    order_number: str | None = None
    command_id: str | None = None
    accepted_amount: Decimal | None = None
    accepted_currency: str | None = None
    accepted_at_ms: int | None = None
    rejected: str | None = None  # reason code the ERP gave
    shipped: dict[str, Decimal] = Field(default_factory=dict)  # line id -> quantity shipped
    shipped_skus: dict[str, str] = Field(default_factory=dict)
    shipments: list[str] = Field(default_factory=list)
    fully_shipped_at_ms: int | None = None
    invoices: dict[str, Decimal] = Field(default_factory=dict)  # invoice number -> net amount
    invoice_currency: str | None = None
    invoiced_at_ms: int | None = None
    due_date: dt.date | None = None
    payments: dict[str, Decimal] = Field(default_factory=dict)  # payment id -> amount
    payment_currency: str | None = None
    credit_hold: bool = False
    disputed: bool = False
    activated_at_ms: int | None = None  # service activation milestone
    customer_accepted_at_ms: int | None = None  # customer acceptance milestone
    events: list[Applied] = Field(default_factory=list)
    reissued_at_ms: int | None = None  # auto-heal: the create was re-issued once
    heal_skipped: bool = False  # auto-heal was due but the deal no longer validates: alert instead
    retries: int = 0  # retryable rejections sent back to the ERP through the retry tiers

    def healing(self, slas: Slas) -> bool:
        """An overdue acceptance still waits for its one auto-heal re-issue (no alert before that)."""
        return slas.auto_heal and self.reissued_at_ms is None and not self.heal_skipped

    @property
    def invoiced(self) -> Decimal:
        return sum(self.invoices.values(), Decimal(0))

    @property
    def paid(self) -> Decimal:
        return sum(self.payments.values(), Decimal(0))

    def seen(self, event_id: str) -> bool:
        return any(a.event_id == event_id for a in self.events)


def _decimal(value: Any) -> Decimal:
    return Decimal(str(value))


def _ms(value: Any) -> int:
    if isinstance(value, int):
        return value
    return int(dt.datetime.fromisoformat(str(value)).timestamp() * 1000)


def apply(view: ErpView, event: ErpEvent) -> None:
    """Fold ``event`` into ``view`` (the caller has checked it was not applied before)."""
    b = event.body
    view.order_number = view.order_number or event.order_number or b.get("order_number")
    view.command_id = view.command_id or event.command_id
    match event.kind:
        case ErpKind.ACCEPTED:
            view.accepted_amount = _decimal(b["accepted_amount"])
            view.accepted_currency = b["currency"]
            view.accepted_at_ms = _ms(b["accepted_at"])
            view.rejected = None
        case ErpKind.REJECTED:
            if view.accepted_at_ms is None:
                view.rejected = b["reason_code"]
        case ErpKind.SHIPPED:
            if b["shipment_id"] not in view.shipments:
                view.shipments.append(b["shipment_id"])
                for line in b.get("lines", []):
                    view.shipped[line["line_id"]] = view.shipped.get(line["line_id"], Decimal(0)) + _decimal(
                        line["quantity"]
                    )
                    view.shipped_skus[line["line_id"]] = line["sku"]
            if b.get("complete"):
                view.fully_shipped_at_ms = view.fully_shipped_at_ms or _ms(b["shipped_at"])
        case ErpKind.INVOICED:
            view.invoices[b["invoice_number"]] = _decimal(b["amount"])
            view.invoice_currency = b["currency"]
            view.invoiced_at_ms = view.invoiced_at_ms or _ms(b["issued_at"])
            if b.get("due_date"):
                view.due_date = dt.date.fromisoformat(str(b["due_date"]))
        case ErpKind.PAID:
            view.payments[b["payment_id"]] = _decimal(b["amount"])
            view.payment_currency = b["currency"]
        case ErpKind.HOLD_PLACED:
            view.credit_hold = True
        case ErpKind.HOLD_RELEASED:
            view.credit_hold = False
        case ErpKind.DISPUTED:
            view.disputed = True
        case ErpKind.ACTIVATED:
            view.activated_at_ms = view.activated_at_ms or event.occurred_at_ms
        case ErpKind.CUSTOMER_ACCEPTED:
            view.customer_accepted_at_ms = view.customer_accepted_at_ms or event.occurred_at_ms
    view.events.append(
        Applied(
            event_id=event.event_id,
            kind=event.kind,
            occurred_at_ms=event.occurred_at_ms,
            coordinates=event.lineage.coordinates,
        )
    )


# --- statuses the CRM shows ----------------------------------------------------------------


def order_status(view: ErpView, cancelled: bool) -> str:
    if cancelled:
        return "CANCELLED"
    if view.rejected and view.accepted_at_ms is None:
        return "REJECTED"
    if view.accepted_at_ms is None and not view.shipments and not view.invoices:
        return "PENDING"
    if view.invoices and view.paid >= view.invoiced > 0:
        return "PAID"
    if view.invoices:
        return "INVOICED"
    if view.fully_shipped_at_ms is not None:
        return "SHIPPED"
    if view.shipments:
        return "PARTIALLY_SHIPPED"
    return "ACCEPTED"


def fulfilment_status(view: ErpView) -> str:
    if view.fully_shipped_at_ms is not None:
        return "SHIPPED"
    return "PARTIALLY_SHIPPED" if view.shipments else "NOT_SHIPPED"


def invoice_status(view: ErpView) -> str:
    if view.disputed:
        return "DISPUTED"
    return "INVOICED" if view.invoices else "NOT_INVOICED"


def payment_status(view: ErpView) -> str:
    if not view.payments:
        return "UNPAID"
    return "PAID" if view.invoices and view.paid >= view.invoiced else "PARTIALLY_PAID"


def crm_fields(view: ErpView, cancelled: bool) -> dict[str, Any]:
    """The ERP-owned fields of an opportunity as the CRM should show them (JSON-mode values): what a
    CRM update carries, and what a CRM user's edit is compared with."""
    return {
        "erp_order_number": view.order_number,
        "order_status": order_status(view, cancelled),
        "fulfilment_status": fulfilment_status(view),
        "invoice_status": invoice_status(view),
        "payment_status": payment_status(view),
        "credit_hold": view.credit_hold,
        "disputed": view.disputed,
    }
