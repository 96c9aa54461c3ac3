"""Parity rules: where the ERP's side of an order disagrees with what the CRM committed.

``findings`` judges one deal at one instant and returns every disagreement keyed by a stable
finding key. The caller diffs that set against the alerts already open: a new key opens an alert,
a key that disappeared resolves it. Every rule is a function of state, never of history, so parity
restored by a late or re-ordered event resolves its alert by itself. No Faust, no I/O.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from app.domain.feedback.lifecycle import ErpView, Slas
from app.domain.orders import renewals
from app.domain.orders.deal import DealState


class DriftKind(StrEnum):
    MISSING_EVENT = "MISSING_EVENT"
    AMOUNT_MISMATCH = "AMOUNT_MISMATCH"
    LINE_MISMATCH = "LINE_MISMATCH"
    LIFECYCLE_GAP = "LIFECYCLE_GAP"
    AGGREGATE_PARITY = "AGGREGATE_PARITY"
    OWNERSHIP_CONFLICT = "OWNERSHIP_CONFLICT"  # app/domain/ownership.py
    RENEWAL_MISSING = "RENEWAL_MISSING"  # app/domain/orders/renewals.py


@dataclass(frozen=True, slots=True)
class Finding:
    key: str
    kind: DriftKind
    severity: str
    expected: str
    observed: str
    detail: str
    owner: str
    amount_at_risk: Decimal | None
    currency: str | None


@dataclass(frozen=True, slots=True)
class Expectation:
    deadline_ms: int
    expected: str
    owner: str


def _ms(delta: dt.timedelta) -> int:
    return int(delta.total_seconds() * 1000)


def expectations(state: DealState, slas: Slas) -> dict[str, Expectation]:
    """ERP events the order still waits for, with their deadlines."""
    order, erp = state.order, state.erp or ErpView()
    out: dict[str, Expectation] = {}
    if order is None or order.commanded_at_ms is None or erp.rejected:
        return out
    if erp.accepted_at_ms is None:
        start = erp.reissued_at_ms or order.commanded_at_ms
        out["missing:accepted"] = Expectation(start + _ms(slas.accept), "OrderAccepted", "order-management")
        return out
    if erp.fully_shipped_at_ms is None:
        out["missing:shipped"] = Expectation(
            erp.accepted_at_ms + _ms(slas.ship), "OrderShipped (complete)", "fulfilment"
        )
    elif not erp.invoices:
        out["missing:invoiced"] = Expectation(erp.fully_shipped_at_ms + _ms(slas.invoice), "OrderInvoiced", "billing")
    if erp.invoices and erp.paid < erp.invoiced:
        if erp.due_date is not None:
            due = dt.datetime.combine(erp.due_date, dt.time(), dt.UTC) + slas.payment_grace
            deadline = int(due.timestamp() * 1000)
        else:
            deadline = (erp.invoiced_at_ms or 0) + _ms(slas.payment)
        out["missing:paid"] = Expectation(deadline, "PaymentReceived (in full)", "collections")
    return out


def next_check_ms(state: DealState, now_ms: int, slas: Slas) -> int | None:
    """When the deal must be judged again without any new event (None: only events can change it)."""
    future = [e.deadline_ms for e in expectations(state, slas).values() if e.deadline_ms > now_ms]
    return min(future) if future else None


def findings(state: DealState, now_ms: int, slas: Slas, tolerance: Decimal) -> dict[str, Finding]:
    erp = state.erp
    order = state.order
    header = state.header
    currency = header.currency if header else None
    committed = order.amount if order else None
    out: dict[str, Finding] = {}

    def add(key, kind, severity, expected, observed, detail, owner, at_risk, cur=currency):
        out[key] = Finding(key, kind, severity, expected, observed, detail, owner, at_risk, cur)

    for key, exp in expectations(state, slas).items():
        if key == "missing:accepted" and (erp or ErpView()).healing(slas):
            continue  # the next check re-issues the create first
        if exp.deadline_ms <= now_ms:
            late = dt.timedelta(milliseconds=now_ms - exp.deadline_ms)
            add(
                key, DriftKind.MISSING_EVENT, "HIGH", exp.expected, "nothing",
                f"{exp.expected} has not arrived; {late} past its SLA", exp.owner, committed,
            )  # fmt: skip
    renewal = state.renewal
    if renewal is not None and not renewals.live(state):
        ended = int(dt.datetime.combine(renewal.term_end, dt.time(), dt.UTC).timestamp() * 1000)
        if now_ms >= ended:
            add(
                "renewal:missing", DriftKind.RENEWAL_MISSING, "HIGH", f"a renewal opportunity by {renewal.term_end}",
                "none open or won", f"the {renewal.months}-month term ended {renewal.term_end} without a renewal",
                "account-management", header.amount if header else None,
            )  # fmt: skip
    if erp is None:
        return out

    cancelled = order is None and bool(state.cancelled_orders)
    if cancelled and (erp.shipments or erp.invoices):
        add(
            "gap:cancelled", DriftKind.LIFECYCLE_GAP, "CRITICAL", "no fulfilment or invoice (order cancelled)",
            f"{len(erp.shipments)} shipment(s), {len(erp.invoices)} invoice(s)",
            "the ERP ships or invoices an order the CRM cancelled", "order-management", erp.invoiced or None,
            erp.invoice_currency or currency,
        )  # fmt: skip
    if order is None and not state.cancelled_orders and erp.events:
        add(
            "gap:unknown-order", DriftKind.LIFECYCLE_GAP, "HIGH", "an order created from a closed-won deal",
            f"ERP events for {state.opportunity_id}", "the ERP reports an order the service never commanded",
            "order-management", erp.accepted_amount, erp.accepted_currency,
        )  # fmt: skip
    if erp.accepted_at_ms is None and (erp.shipments or erp.invoices or erp.payments):
        add(
            "gap:not-accepted", DriftKind.LIFECYCLE_GAP, "HIGH", "OrderAccepted first",
            "shipped, invoiced or paid before acceptance", "ERP events arrived ahead of the order's acceptance",
            "order-management", committed,
        )  # fmt: skip
    schedule = header.billing_schedule if header else None
    if erp.invoices and erp.customer_accepted_at_ms is None and schedule in slas.acceptance_billing:
        add(
            "gap:invoiced-before-acceptance", DriftKind.LIFECYCLE_GAP, "HIGH", "CustomerAccepted before OrderInvoiced",
            f"{len(erp.invoices)} invoice(s), no acceptance",
            f"the ERP invoiced before the customer's acceptance; billing schedule {schedule} bills on acceptance",
            "billing", erp.invoiced, erp.invoice_currency or currency,
        )  # fmt: skip
    if erp.payments and erp.paid > erp.invoiced + tolerance:
        add(
            "gap:overpaid", DriftKind.LIFECYCLE_GAP, "HIGH", f"paid <= invoiced {erp.invoiced}", f"paid {erp.paid}",
            "more was paid than invoiced", "collections", erp.paid - erp.invoiced, erp.payment_currency,
        )  # fmt: skip

    if order is not None and erp.accepted_at_ms is not None:
        if erp.accepted_currency != order.currency:
            add(
                "amount:accepted", DriftKind.AMOUNT_MISMATCH, "HIGH", f"{committed} {order.currency}",
                f"{erp.accepted_amount} {erp.accepted_currency}", "the ERP accepted the order in another currency",
                "deal-desk", committed,
            )  # fmt: skip
        elif committed is not None and abs((erp.accepted_amount or 0) - committed) > tolerance:
            add(
                "amount:accepted", DriftKind.AMOUNT_MISMATCH, "HIGH", f"{committed} {order.currency}",
                f"{erp.accepted_amount} {erp.accepted_currency}", "closed-won amount and ERP order amount differ",
                "deal-desk", abs((erp.accepted_amount or 0) - committed),
            )  # fmt: skip
        if erp.invoices and erp.fully_shipped_at_ms is not None:
            basis = erp.accepted_amount if erp.accepted_amount is not None else committed
            # billed in instalments (monthly, quarterly, ...), an invoice below the order amount is expected
            at_once = billed_at_once(header)
            over = erp.invoiced - (basis or 0) > tolerance
            under = at_once and (basis or 0) - erp.invoiced > tolerance
            if erp.invoice_currency != erp.accepted_currency or over or under:
                add(
                    "amount:invoiced", DriftKind.AMOUNT_MISMATCH, "HIGH", f"{basis} {erp.accepted_currency}",
                    f"{erp.invoiced} {erp.invoice_currency}", "the invoiced amount differs from the order amount",
                    "billing", abs(erp.invoiced - (basis or 0)), erp.invoice_currency,
                )  # fmt: skip

    if order is not None and erp.shipments:
        problems, at_risk = _line_problems(state, erp)
        if problems:
            add(
                "lines", DriftKind.LINE_MISMATCH, "MEDIUM", "shipped lines and quantities as ordered",
                "; ".join(problems)[:500], "shipped items or quantities differ from the order", "fulfilment", at_risk,
            )  # fmt: skip
    return out


def _line_problems(state: DealState, erp: ErpView) -> tuple[list[str], Decimal]:
    problems: list[str] = []
    at_risk = Decimal(0)
    complete = erp.fully_shipped_at_ms is not None
    for line_id, shipped in sorted(erp.shipped.items()):
        line = state.lines.get(line_id)
        if line is None:
            problems.append(f"{line_id}: shipped {_qty(shipped)} but not on the order")
            continue
        ordered = line.quantity or Decimal(0)
        if shipped > ordered or (complete and shipped != ordered):
            problems.append(f"{line_id}: ordered {_qty(ordered)}, shipped {_qty(shipped)}")
            at_risk += abs(ordered - shipped) * (line.unit_price or Decimal(0))
    if complete:
        for line_id, line in sorted(state.lines.items()):
            if line_id not in erp.shipped:
                problems.append(f"{line_id}: ordered {_qty(line.quantity or Decimal(0))}, none shipped")
                at_risk += (line.quantity or Decimal(0)) * (line.unit_price or Decimal(0))
    return problems, at_risk


def _qty(q: Decimal) -> str:
    return format(q.normalize(), "f")


def billed_at_once(header) -> bool:
    """One invoice for the whole order: upfront, or yearly billing of a contract of at most a year."""
    if header is None or header.billing_schedule in (None, "UPFRONT"):
        return True
    return header.billing_schedule == "ANNUAL" and (header.contract_term_months or 12) <= 12
