"""Aggregate parity: per currency and tumbling window, closed-won on the CRM side vs accepted on the ERP side.

An order counts in the window of its create command on both sides, so the question a window
answers is "of the deals closed in this hour (day), how much did the ERP accept?" and a deal closed
at 10:59 and accepted at 11:01 is no gap. A window is judged once it has ended and the acceptance
SLA has passed; a late fact re-judges it.

Each deal publishes its *contribution* (``set``, never ``add``): ``(currency, window anchor,
amount)`` per side, or nothing. The parity agent keeps the last contribution per deal and moves
the window sums by the difference, so a redelivered or repeated fact changes nothing. No Faust, no
I/O.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from app.domain.audit import alert_audit
from app.domain.orders.deal import DealState
from app.domain.outputs import DriftAlert, Output, ParityFact

WINDOWS = {"1h": 3_600_000, "1d": 86_400_000}  # window name -> length (ms): the default tumbling windows
KEEP_WINDOWS = 48  # windows kept per length
SIDES = ("crm", "erp")


@dataclass(frozen=True, slots=True)
class Fact:
    """Deal ``opportunity_id``'s contribution to ``side`` in ``currency`` (``amount`` None: withdrawn)."""

    opportunity_id: str
    side: str
    currency: str
    at_ms: int
    amount: Decimal | None


def contributions(state: DealState) -> dict[str, tuple[str, int, Decimal] | None]:
    order, erp = state.order, state.erp
    if order is None or order.commanded_at_ms is None or not order.currency:
        return {"crm": None, "erp": None}
    crm = (order.currency, order.commanded_at_ms, order.amount or Decimal(0))
    accepted = None
    if erp is not None and erp.accepted_at_ms is not None:
        same = erp.accepted_currency == order.currency
        accepted = (order.currency, order.commanded_at_ms, (erp.accepted_amount or Decimal(0)) if same else Decimal(0))
    return {"crm": crm, "erp": accepted}


def facts(state: DealState) -> list[Fact]:
    """The facts that bring the parity agent up to date with ``state`` (recorded in ``state.parity``)."""
    out: list[Fact] = []
    now = contributions(state)
    for side in SIDES:
        sent = state.parity.get(side)
        want = now[side]
        current = None if want is None else [want[0], want[1], str(want[2])]
        if sent == current:
            continue
        if sent is not None and (want is None or sent[0] != want[0]):
            out.append(Fact(state.opportunity_id, side, sent[0], sent[1], None))  # withdrawn from its currency
        if want is not None:
            out.append(Fact(state.opportunity_id, side, want[0], want[1], want[2]))
        state.parity[side] = current
    return out


def fact_outputs(state: DealState) -> list[Output]:
    return [
        ParityFact(
            f.currency,
            {
                "opp": f.opportunity_id,
                "side": f.side,
                "currency": f.currency,
                "at_ms": f.at_ms,
                "amount": None if f.amount is None else str(f.amount),
            },
        )
        for f in facts(state)
    ]


def forget_outputs(state: DealState) -> list[Output]:
    """A retired deal's contributions dropped from the parity entries, not from the window sums: a
    retired deal changes no more, so what it added to its windows stays counted there."""
    return [
        ParityFact(
            sent[0],
            {"forget": True, "opp": state.opportunity_id, "side": side, "currency": sent[0]},
        )
        for side, sent in sorted(state.parity.items())
        if sent is not None
    ]


def parse_fact(value: dict[str, Any]) -> Fact:
    amount = value["amount"]
    return Fact(
        value["opp"], value["side"], value["currency"], value["at_ms"], None if amount is None else Decimal(amount)
    )


class Bucket(BaseModel):
    """One window of one currency."""

    crm_count: int = 0
    crm_amount: Decimal = Decimal(0)
    erp_count: int = 0
    erp_amount: Decimal = Decimal(0)
    judged: bool = False
    alert_id: str | None = None  # the open AGGREGATE_PARITY alert of this window
    opened_at_ms: int | None = None

    def move(self, side: str, count: int, amount: Decimal) -> None:
        if side == "crm":
            self.crm_count += count
            self.crm_amount += amount
        else:
            self.erp_count += count
            self.erp_amount += amount

    @property
    def ratio(self) -> Decimal | None:
        return None if not self.crm_amount else (self.erp_amount / self.crm_amount).quantize(Decimal("0.0001"))

    @property
    def gap(self) -> Decimal:
        return self.crm_amount - self.erp_amount


def bucket_key(currency: str, window: str, start_ms: int) -> str:
    return f"bucket|{currency}|{window}|{start_ms:013d}"


def parse_bucket_key(key: str) -> tuple[str, str, int]:
    _, currency, window, start = key.split("|")
    return currency, window, int(start)


def windows_of(at_ms: int, windows: dict[str, int]) -> list[tuple[str, int]]:
    return [(name, at_ms - at_ms % length) for name, length in windows.items()]


def fold(previous: Fact | None, fact: Fact, buckets: dict[str, Bucket], windows: dict[str, int]) -> None:
    """Move the window sums from the deal's previous contribution (same side, same currency) to ``fact``."""
    for old_or_new, sign in ((previous, -1), (fact, 1)):
        if old_or_new is None or old_or_new.amount is None:
            continue
        for window, start in windows_of(old_or_new.at_ms, windows):
            key = bucket_key(old_or_new.currency, window, start)
            bucket = buckets.setdefault(key, Bucket())
            bucket.move(fact.side, sign, sign * old_or_new.amount)
            bucket.judged = False  # a late fact re-judges a window already judged


@dataclass(frozen=True, slots=True)
class Thresholds:
    settle: dt.timedelta  # after the window ends, before judging it (the acceptance SLA)
    max_gap_ratio: Decimal  # |1 - accepted/closed| beyond this opens an alert
    windows: dict[str, int]  # window name -> length (ms)


def due(key: str, now_ms: int, th: Thresholds) -> bool:
    _, window, start = parse_bucket_key(key)
    return now_ms >= start + th.windows.get(window, 0) + int(th.settle.total_seconds() * 1000)


def expired(key: str, now_ms: int, th: Thresholds) -> bool:
    """Kept windows are pruned once they are old (a window of a length no longer configured at once)."""
    _, window, start = parse_bucket_key(key)
    return now_ms >= start + th.windows.get(window, 0) * (KEEP_WINDOWS + 1)


def parse_windows(spec: str) -> dict[str, int]:
    """``"1h=3600,1d=86400"`` -> ``{"1h": 3600000, "1d": 86400000}``."""
    out = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, seconds = part.partition("=")
        if not name or not seconds or float(seconds) <= 0:
            raise ValueError(f"parity window {part!r}: expected <name>=<seconds>")
        out[name.strip()] = int(float(seconds) * 1000)
    return out


def judge(key: str, bucket: Bucket, now: dt.datetime, th: Thresholds) -> list[Output]:
    """Open or resolve the window's AGGREGATE_PARITY alert; marks the bucket judged."""
    currency, window, start = parse_bucket_key(key)
    bucket.judged = True
    ratio = bucket.ratio
    diverges = ratio is not None and abs(1 - ratio) > th.max_gap_ratio
    now_ms = int(now.timestamp() * 1000)
    if diverges and bucket.alert_id is None:
        bucket.alert_id = f"parity:{currency}:{window}:{start}"
        bucket.opened_at_ms = now_ms
        return _records(currency, window, start, bucket, now, opening=True)
    if not diverges and bucket.alert_id is not None:
        out = _records(currency, window, start, bucket, now, opening=False)
        bucket.alert_id = bucket.opened_at_ms = None
        return out
    return []


def _records(currency: str, window: str, start: int, b: Bucket, now: dt.datetime, opening: bool) -> list[Output]:
    begins = dt.datetime.fromtimestamp(start / 1000, dt.UTC)
    opened = dt.datetime.fromtimestamp((b.opened_at_ms or 0) / 1000, dt.UTC)
    detail = (
        f"{window} window from {begins.isoformat()}: {b.crm_count} deals closed for {b.crm_amount} {currency}, "
        f"{b.erp_count} accepted by the ERP for {b.erp_amount} {currency} (ratio {b.ratio})"
    )
    value: dict[str, Any] = {
        "alert_id": b.alert_id,
        "kind": "AGGREGATE_PARITY",
        "state": "OPEN" if opening else "RESOLVED",
        "severity": "HIGH",
        "correlation_id": None,
        "customer_id": None,
        "order_number": None,
        "amount_at_risk": str(abs(b.gap).quantize(Decimal("0.01"))),
        "currency": currency,
        "expected": f"{b.crm_amount} {currency} accepted",
        "observed": f"{b.erp_amount} {currency} accepted",
        "detail": detail if opening else f"parity restored: {detail}",
        "suggested_owner": "revops",
        "opened_at": opened.isoformat(),
        "resolved_at": None if opening else now.isoformat(),
        "observed_at": now.isoformat(),
    }
    alert_id = b.alert_id or ""
    return [DriftAlert(alert_id, value), alert_audit(alert_id, opening, currency, None, [], detail, now)]
