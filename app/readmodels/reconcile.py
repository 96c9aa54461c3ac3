"""Reconciliation: every order the service knows, classified by how its CRM and ERP sides agree.

Built from the service's own deal state, not from a second read of either system: each deal's
state already holds what the CRM committed, what the ERP reported and the drift alerts parity
opened, so the report agrees with the alerts operators already see. No Faust, no I/O.

Each deal lands in exactly one category, checked in this order:

* ``only_in_erp``: ERP events but no current order (never commanded, or cancelled in the CRM). The
  LIFECYCLE_GAP alert parity opens for such a deal *is* this finding, so presence wins over it.
* ``mismatched``: an order, and an open AMOUNT_MISMATCH, LINE_MISMATCH or LIFECYCLE_GAP alert.
* ``only_in_crm``: an order the ERP never accepted (rejected, overdue, or simply not yet).
* ``matched``: an order the ERP accepted, with no open mismatch alert. An open MISSING_EVENT alert
  for a later step (shipment, invoice, payment) does not break *order* parity: the deal stays
  matched and is counted in ``open_missing_events`` instead.

Deals with neither an order nor ERP events are not orders and are skipped.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from app.domain.errors import ReasonCode
from app.domain.orders.deal import DealState
from app.domain.parity.rules import DriftKind

MISMATCH_KINDS = frozenset(
    str(k) for k in (DriftKind.AMOUNT_MISMATCH, DriftKind.LINE_MISMATCH, DriftKind.LIFECYCLE_GAP)
)
AWAITING_ACCEPTANCE = "AWAITING_ACCEPTANCE"
UNKNOWN_ORDER = "UNKNOWN_ORDER"
CANCELLED_IN_CRM = "CANCELLED_IN_CRM"
NO_CURRENCY = "UNKNOWN"  # amount bucket for an amount that came without a currency


class Category(StrEnum):
    MATCHED = "matched"
    ONLY_IN_CRM = "only_in_crm"
    ONLY_IN_ERP = "only_in_erp"
    MISMATCHED = "mismatched"


@dataclass(frozen=True, slots=True)
class Classified:
    """One order's verdict; ``at_ms`` places it in time (create command, else first ERP event)."""

    opportunity_id: str
    category: Category
    reasons: tuple[str, ...]
    finding_keys: tuple[str, ...]  # the deal's open drift alerts
    at_ms: int | None
    crm_amount: Decimal | None = None
    crm_currency: str | None = None
    erp_amount: Decimal | None = None
    erp_currency: str | None = None
    open_missing: tuple[str, ...] = ()  # finding keys of open MISSING_EVENT alerts

    def to_json(self) -> dict[str, Any]:
        return {
            "opportunity_id": self.opportunity_id,
            "category": str(self.category),
            "reasons": list(self.reasons),
            "finding_keys": list(self.finding_keys),
            "at": iso(self.at_ms),
            "crm_amount": _str(self.crm_amount),
            "crm_currency": self.crm_currency,
            "erp_amount": _str(self.erp_amount),
            "erp_currency": self.erp_currency,
        }


def classify(state: DealState) -> Classified | None:
    """The deal's category and reasons, or None when it is not an order on either side."""
    order, erp = state.order, state.erp
    events = erp.events if erp else []
    if order is None and not events:
        return None
    kinds = {str(ref.kind) for ref in state.alerts.values()}
    missing = tuple(sorted(k for k, ref in state.alerts.items() if ref.kind == DriftKind.MISSING_EVENT))
    first_event = min((e.occurred_at_ms for e in events), default=None)
    at_ms = order.commanded_at_ms if order and order.commanded_at_ms is not None else first_event
    accepted = erp is not None and erp.accepted_at_ms is not None
    if order is None:
        category, reasons = Category.ONLY_IN_ERP, [CANCELLED_IN_CRM if state.cancelled_orders else UNKNOWN_ORDER]
    elif mismatch := sorted(kinds & MISMATCH_KINDS):
        category, reasons = Category.MISMATCHED, mismatch
    elif not accepted:
        rejected = bool(erp and erp.rejected) or str(ReasonCode.ERP_REJECTED) in state.open_exceptions
        reasons = [ReasonCode.ERP_REJECTED] if rejected else []
        reasons += [DriftKind.MISSING_EVENT] if missing else []
        category, reasons = Category.ONLY_IN_CRM, reasons or [AWAITING_ACCEPTANCE]
    else:
        category, reasons = Category.MATCHED, []
    return Classified(
        opportunity_id=state.opportunity_id,
        category=category,
        reasons=tuple(str(r) for r in reasons),
        finding_keys=tuple(sorted(state.alerts)),
        at_ms=at_ms,
        crm_amount=order.amount if order else None,
        crm_currency=order.currency if order else None,
        erp_amount=erp.accepted_amount if accepted and erp else None,
        erp_currency=erp.accepted_currency if accepted and erp else None,
        open_missing=missing if category is Category.MATCHED else (),
    )


@dataclass
class Summary:
    """One category's totals; amounts are summed per currency, never converted."""

    count: int = 0
    crm_amount: dict[str, Decimal] = field(default_factory=dict)
    erp_amount: dict[str, Decimal] = field(default_factory=dict)
    reasons: Counter[str] = field(default_factory=Counter)

    def add(self, c: Classified) -> None:
        self.count += 1
        _sum(self.crm_amount, c.crm_amount, c.crm_currency)
        _sum(self.erp_amount, c.erp_amount, c.erp_currency)
        self.reasons.update(c.reasons)

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "crm_amount": {cur: str(v) for cur, v in sorted(self.crm_amount.items())},
            "erp_amount": {cur: str(v) for cur, v in sorted(self.erp_amount.items())},
            "reasons": dict(sorted(self.reasons.items())),
        }


@dataclass
class Report:
    since_ms: int | None
    until_ms: int | None
    categories: dict[Category, Summary] = field(default_factory=lambda: {c: Summary() for c in Category})
    open_missing_events: int = 0  # matched orders with an open MISSING_EVENT alert
    open_missing_by_finding: Counter[str] = field(default_factory=Counter)
    skipped: int = 0  # neither an order nor ERP events
    outside_range: int = 0  # orders outside [since, until), or undated while a range is set
    unreadable: int = 0  # states that did not parse (set by the reader)
    attention: list[Classified] = field(default_factory=list)  # every order not matched

    @property
    def orders(self) -> int:
        return sum(s.count for s in self.categories.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "range": {"since": iso(self.since_ms), "until": iso(self.until_ms)},
            "orders": self.orders,
            "skipped": self.skipped,
            "outside_range": self.outside_range,
            "unreadable": self.unreadable,
            "categories": {str(c): s.to_json() for c, s in self.categories.items()},
            "open_missing_events": self.open_missing_events,
            "open_missing_by_finding": dict(sorted(self.open_missing_by_finding.items())),
            "attention": [c.to_json() for c in self.attention],
        }


def reconcile(states: Iterable[DealState], since_ms: int | None = None, until_ms: int | None = None) -> Report:
    """The report over ``states`` whose time falls in ``[since_ms, until_ms)`` (either bound optional)."""
    report = Report(since_ms, until_ms)
    for state in states:
        c = classify(state)
        if c is None:
            report.skipped += 1
            continue
        if not _in_range(c.at_ms, since_ms, until_ms):
            report.outside_range += 1
            continue
        report.categories[c.category].add(c)
        if c.open_missing:
            report.open_missing_events += 1
            report.open_missing_by_finding.update(c.open_missing)
        if c.category is not Category.MATCHED:
            report.attention.append(c)
    report.attention.sort(key=lambda c: (list(Category).index(c.category), c.opportunity_id))
    return report


def _in_range(at_ms: int | None, since_ms: int | None, until_ms: int | None) -> bool:
    if since_ms is None and until_ms is None:
        return True
    if at_ms is None:
        return False
    return (since_ms is None or at_ms >= since_ms) and (until_ms is None or at_ms < until_ms)


def _sum(totals: dict[str, Decimal], amount: Decimal | None, currency: str | None) -> None:
    if amount is not None:
        key = currency or NO_CURRENCY
        totals[key] = totals.get(key, Decimal(0)) + amount


def _str(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def iso(ms: int | None) -> str | None:
    return None if ms is None else dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat()


# --- plain-text rendering -----------------------------------------------------------------


def _money(amount: Decimal | None, currency: str | None) -> str:
    return "-" if amount is None else f"{currency or NO_CURRENCY} {amount:,.2f}"


def _amounts(totals: dict[str, Decimal]) -> str:
    return ", ".join(_money(v, cur) for cur, v in sorted(totals.items())) or "-"


def _grid(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]

    def cell(i: int, v: str) -> str:
        return v.rjust(widths[i]) if i in right else v.ljust(widths[i])

    return ["  ".join(cell(i, v) for i, v in enumerate(r)).rstrip() for r in rows]


def render_table(report: Report, max_rows: int = 50) -> str:
    """The report as a plain-text table for a terminal (``max_rows`` caps the attention list)."""
    span = f"{iso(report.since_ms) or '(start)'} .. {iso(report.until_ms) or '(now)'}"
    out = [
        f"reconciliation {span}",
        f"{report.orders} order(s); {report.outside_range} outside the range; "
        f"{report.skipped} deal(s) without an order skipped; {report.unreadable} unreadable",
        "",
    ]
    rows = [["category", "orders", "CRM amount", "ERP amount"]]
    rows += [[c, str(s.count), _amounts(s.crm_amount), _amounts(s.erp_amount)] for c, s in report.categories.items()]
    out += _grid(rows, right={1})
    reasons = [[c, r, str(n)] for c, s in report.categories.items() for r, n in sorted(s.reasons.items())]
    if reasons:
        out += ["", "reasons", *_grid([["category", "reason", "orders"], *reasons], right={2})]
    by_key = ", ".join(f"{k} {n}" for k, n in sorted(report.open_missing_by_finding.items()))
    out += ["", f"matched orders with an open MISSING_EVENT alert: {report.open_missing_events}"]
    out[-1] += f" ({by_key})" if by_key else ""
    if report.attention:
        rows = [["opportunity", "category", "reasons", "CRM amount", "ERP amount", "at"]]
        for c in report.attention[:max_rows]:
            crm, erp = _money(c.crm_amount, c.crm_currency), _money(c.erp_amount, c.erp_currency)
            rows.append([c.opportunity_id, c.category, ",".join(c.reasons), crm, erp, iso(c.at_ms) or "-"])
        out += ["", "needing attention", *_grid(rows, right=set())]
        if len(report.attention) > max_rows:
            out.append(f"... and {len(report.attention) - max_rows} more (use --json for all)")
    return "\n".join(out) + "\n"
