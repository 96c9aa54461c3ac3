"""Lifecycle KPIs: the baseline a RevOps team measures the integration by, read off one decision.

The seed guide's baseline metrics: how long an order takes from the CRM's close to the ERP's
acceptance (the hand-off), from close to invoice and from invoice to payment in full, how often the
invoice matches the order, and how many exceptions a hundred closed deals raise. Each decision says
which of these it just measured (``Measure``); the edge turns them into Prometheus series, so a
redelivered input, whose step is not run again, measures nothing twice. No Faust, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from app.domain.feedback.lifecycle import ErpView
from app.domain.orders.deal import DealState


class Cycle(StrEnum):
    HANDOFF = "order_handoff"  # CRM close → ERP accepted
    CLOSE_TO_INVOICE = "close_to_invoice"  # CRM close → first invoice
    INVOICE_TO_PAID = "invoice_to_paid"  # first invoice → paid in full


@dataclass(frozen=True, slots=True)
class CycleTime:
    cycle: Cycle
    seconds: float


@dataclass(frozen=True, slots=True)
class BillingCheck:
    """An order billed at once got its first invoice: does it match what the ERP accepted?"""

    accurate: bool


@dataclass(frozen=True, slots=True)
class DealClosed:
    """A deal became closed-won (again, after a reopen): the denominator of exceptions per 100 deals."""


Measure = CycleTime | BillingCheck | DealClosed


@dataclass(frozen=True, slots=True)
class Reached:
    """Which steps an order's ERP side had reached, taken before an event is applied."""

    accepted: bool
    invoiced: bool
    paid: bool

    @classmethod
    def of(cls, erp: ErpView | None) -> Reached:
        if erp is None:
            return cls(False, False, False)
        return cls(erp.accepted_at_ms is not None, bool(erp.invoices), _paid_in_full(erp))


def _paid_in_full(erp: ErpView) -> bool:
    return bool(erp.invoices) and erp.paid >= erp.invoiced > 0


def measures(before: Reached, state: DealState, event_ms: int, tolerance: Decimal, at_once: bool) -> list[Measure]:
    """What the event applied at ``event_ms`` (its ERP time) completed, measured from the CRM close;
    ``at_once``: the order is billed in one invoice (only then is its first invoice checked)."""
    erp = state.erp
    if erp is None or state.order is None:
        return []
    close_ms = state.close_pos.ts_ms if state.close_pos else None
    out: list[Measure] = []
    if not before.accepted and erp.accepted_at_ms is not None and close_ms:
        out.append(CycleTime(Cycle.HANDOFF, max(erp.accepted_at_ms - close_ms, 0) / 1000))
    if not before.invoiced and erp.invoices:
        if close_ms and erp.invoiced_at_ms is not None:
            out.append(CycleTime(Cycle.CLOSE_TO_INVOICE, max(erp.invoiced_at_ms - close_ms, 0) / 1000))
        if at_once:
            basis = erp.accepted_amount if erp.accepted_amount is not None else state.order.amount
            same_currency = erp.invoice_currency == (erp.accepted_currency or state.order.currency)
            out.append(BillingCheck(same_currency and basis is not None and abs(erp.invoiced - basis) <= tolerance))
    if not before.paid and _paid_in_full(erp) and erp.invoiced_at_ms is not None:
        out.append(CycleTime(Cycle.INVOICE_TO_PAID, max(event_ms - erp.invoiced_at_ms, 0) / 1000))
    return out
