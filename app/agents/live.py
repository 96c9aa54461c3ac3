"""What is open right now, kept small enough for a timer to scan: open drift alerts and exception SLAs.

The flows that emit drift alerts keep the open-drift-alerts table (``app/flows/alerts.py``). The
timer below turns the open alerts and the exception ledger into gauges: backlog, age, past SLA and
revenue at risk. Each worker reports its own partitions; Prometheus sums the workers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections import Counter, defaultdict
from decimal import Decimal
from typing import TYPE_CHECKING

import orjson

from app.domain.exceptions import state as exception_state
from app.domain.exceptions.escalation import due_at
from app.domain.parity.at_risk import AtRisk, revenue_at_risk
from app.flows.step import rows
from app.observe import metrics, stalls, task_dump
from app.observe.registry_probe import registry_reachable
from app.observe.source_schemas import unreadable_sources
from app.observe.topic_presence import missing_topics

if TYPE_CHECKING:
    from app.engine.bootstrap import Engine
    from app.engine.table import Table

log = logging.getLogger(__name__)
GAUGE_INTERVAL_S = 15.0


def _age_s(iso: str, now: dt.datetime) -> float:
    return max(0.0, (now - dt.datetime.fromisoformat(iso)).total_seconds())


def _set(gauge, values: dict[tuple, float]) -> None:
    gauge.clear()
    for labels, value in values.items():
        gauge.labels(*labels).set(value)


def refresh_gauges(exception_ledger: Table, open_alerts: Table, now: dt.datetime) -> None:
    backlog: Counter = Counter()
    oldest: dict[tuple, float] = defaultdict(float)
    past_sla: Counter = Counter()
    risks: list[AtRisk] = []
    for _, raw in list(rows(exception_ledger.items())):
        row = orjson.loads(raw)
        exc = row["exception"]
        if not exception_state.is_open(row) or exc is None:
            continue
        backlog[(exc["reason_code"], exc["severity"])] += 1
        oldest[(exc["severity"],)] = max(oldest[(exc["severity"],)], _age_s(exc["raised_at"], now))
        past_sla[(exc["severity"],)] += due_at(exc) <= now
        if exc.get("amount_at_risk") and exc.get("currency"):
            deal = exc.get("correlation_id") or exc["exception_id"]
            risks.append(AtRisk("exceptions", deal, exc["currency"], Decimal(exc["amount_at_risk"])))
    alerts: Counter = Counter()
    alert_age: dict[tuple, float] = defaultdict(float)
    for key, raw in list(open_alerts.items()):
        a = orjson.loads(raw)
        alerts[(a["kind"],)] += 1
        alert_age[(a["kind"],)] = max(alert_age[(a["kind"],)], _age_s(a["opened"], now))
        if a["amount"] and a["currency"]:
            deal = a.get("correlation_id") or key.decode()
            risks.append(AtRisk("drift_alerts", deal, a["currency"], Decimal(a["amount"])))
    _set(metrics.open_exceptions, backlog)
    _set(metrics.oldest_open_exception_seconds, oldest)
    _set(metrics.exceptions_past_sla, past_sla)
    _set(metrics.open_drift_alerts, alerts)
    _set(metrics.oldest_open_drift_alert_seconds, alert_age)
    _set(metrics.revenue_at_risk, {k: float(v) for k, v in revenue_at_risk(risks).items()})


def register(engine: Engine) -> None:
    """The gauge timers and the start-up probes, on the engine's app."""
    app, settings, tables = engine.app, engine.settings, engine.tables
    tiers = {settings.topic(f"sync.retry.{tier}"): tier for tier, _ in engine.guard.tiers}  # full topic name -> tier
    delays = {settings.topic(f"sync.retry.{tier}"): delay for tier, delay in engine.guard.tiers}
    watch = stalls.StallWatch(settings.stall_after_s, delays)

    @app.timer(interval=GAUGE_INTERVAL_S)
    async def update_gauges() -> None:
        """Backlog, age and revenue-at-risk gauges (never raises: a timer error kills the worker)."""
        if app.rebalancing:
            return
        try:
            refresh_gauges(tables.exception_ledger, tables.open_alerts, dt.datetime.now(dt.UTC))
        except Exception:
            log.exception("refreshing the state gauges failed; will try again")

    async def refresh_lag() -> None:
        """Consumer lag per assigned input partition (high watermark minus committed offset) and retry-tier depth."""
        assigned = [tp for tp in app.consumer.assignment() if not tp.topic.endswith("-changelog")]
        highwaters = await app.consumer.highwaters(*assigned) if assigned else {}
        # this run's commits; before the first one, what the group had committed when it was assigned
        committed = {**app.consumer._committed_offset, **app.monitor.tp_committed_offsets}
        lag = {(tp.topic, str(tp.partition)): max(0, end - (committed.get(tp) or 0)) for tp, end in highwaters.items()}
        offsets = {(tp.topic, tp.partition): (committed.get(tp) or 0, end) for tp, end in highwaters.items()}
        found = watch.observe(time.monotonic(), offsets)
        if stalls.report(found) and found:
            log.error("input partitions with lag and no progress (stalled): %s", "; ".join(found))
        metrics.stuck_partitions.set(len(found))
        depth: Counter = Counter({(tier,): 0 for tier in tiers.values()})
        for (topic, _), n in lag.items():
            tier = tiers.get(topic)
            if tier is not None:
                depth[(tier,)] += n
        _set(metrics.consumer_lag, lag)
        _set(metrics.retry_tier_depth, depth)

    @app.timer(interval=GAUGE_INTERVAL_S)
    async def update_lag() -> None:
        """Lag and retry-tier depth gauges (never raises: a timer error kills the worker)."""
        if app.rebalancing:
            return
        try:
            await refresh_lag()
        except Exception:
            log.exception("refreshing the lag gauges failed; will try again")

    @app.task
    async def dump_tasks_on_sigusr1() -> None:
        task_dump.install(asyncio.get_running_loop())

    @app.task
    async def probe_at_start() -> None:
        """A timer first fires one interval after start; until then the registry gauge would read 0,
        "down", and missing topics and unreadable source schemas would go unreported."""
        await _probe()

    @app.timer(interval=GAUGE_INTERVAL_S)
    async def probe_registry_and_topics() -> None:
        await _probe()


async def _probe() -> None:
    await registry_reachable(max_age_s=0)
    await missing_topics(max_age_s=0)
    await unreadable_sources(max_age_s=0)
