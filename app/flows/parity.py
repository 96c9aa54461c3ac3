"""The aggregate parity flow: each deal's contribution folded into window sums per currency, and
windows judged once they have settled (``app.domain.parity.aggregate`` holds the rules).

Input, keyed by currency: a fact (a deal's contribution on one side), a ``judge`` message the
timer sends when a window falls due, or a retired deal's ``forget``. One table holds it all, so
one changelog orders a step's rows after its outbox row: ``parity-windows`` with window sums
(``bucket|<currency>|<window>|<start>``) and each deal's last contribution
(``<currency>|<side>|<opportunity>``). Contributions written by 0.1 in ``parity-entries`` are read
from there and moved over as deals change.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import orjson

from app.domain.outputs import Output
from app.domain.parity import aggregate
from app.domain.parity.aggregate import Bucket, Fact, Thresholds
from app.flows.alerts import alert_writes
from app.flows.step import Step, Tables, Write

WINDOWS, ENTRIES = "parity-windows", "parity-entries"  # ENTRIES: 0.1's contributions, read and emptied


@dataclass(frozen=True, slots=True)
class Context:
    now: dt.datetime
    thresholds: Thresholds


@dataclass(slots=True)
class Judged:
    """``Step.info``: whether the fact changed anything, and the buckets judged (for the gauges)."""

    applied: bool
    judged: list[tuple[str, Bucket]] = field(default_factory=list)
    alerts: list[Output] = field(default_factory=list)


def _bucket(raw: bytes | None) -> Bucket:
    return Bucket.model_validate_json(raw) if raw else Bucket()


def _entry(raw: bytes | None) -> Fact | None:
    return aggregate.parse_fact(orjson.loads(raw)) if raw else None


def step(tables: Tables, message: dict[str, Any], ctx: Context) -> Step:
    windows_table, legacy = tables[WINDOWS], tables[ENTRIES]
    th, now = ctx.thresholds, ctx.now
    now_ms = int(now.timestamp() * 1000)
    writes: list[Write] = []
    if message.get("forget"):  # a retired deal: its entry goes, its windows keep what it added
        entry_key = f"{message['currency']}|{message['side']}|{message['opp']}".encode()
        writes = [Write(t, entry_key, None) for t in (WINDOWS, ENTRIES) if entry_key in tables[t]]
        return Step(writes, info=Judged(True))
    if message.get("judge"):
        currency = message["currency"]
        prefix = f"bucket|{currency}|"
        keys = [k.decode() for k in list(windows_table.keys()) if k.decode().startswith(prefix)]
        buckets = {k: Bucket.model_validate_json(windows_table[k.encode()]) for k in keys}
        expired = [k for k in keys if aggregate.expired(k, now_ms, th) and buckets[k].alert_id is None]
        changed: set[str] = set()
    else:
        fact = aggregate.parse_fact(message)
        entry_key = f"{fact.currency}|{fact.side}|{fact.opportunity_id}".encode()
        previous = _entry(windows_table.get(entry_key) or legacy.get(entry_key))
        if previous == fact or (previous is None and fact.amount is None):
            return Step(info=Judged(applied=False))
        keys = sorted(
            {
                aggregate.bucket_key(f.currency, window, start)
                for f in (previous, fact)
                if f is not None and f.amount is not None
                for window, start in aggregate.windows_of(f.at_ms, th.windows)
            }
        )
        buckets = {k: _bucket(windows_table.get(k.encode())) for k in keys}
        aggregate.fold(previous, fact, buckets, th.windows)
        expired, changed = [], set(buckets)
        writes.append(Write(WINDOWS, entry_key, None if fact.amount is None else orjson.dumps(message)))
        if entry_key in legacy:
            writes.append(Write(ENTRIES, entry_key, None))
    info = Judged(applied=not message.get("judge"))
    for key, bucket in buckets.items():
        if not bucket.judged and aggregate.due(key, now_ms, th) and key not in expired:
            info.alerts += aggregate.judge(key, bucket, now, th)
            info.judged.append((key, bucket))
            changed.add(key)
    writes += [Write(WINDOWS, key.encode(), None) for key in expired]
    writes += [
        Write(WINDOWS, key.encode(), buckets[key].model_dump_json().encode()) for key in sorted(changed - set(expired))
    ]
    writes += alert_writes(list(info.alerts))
    return Step(writes, list(info.alerts), info)
