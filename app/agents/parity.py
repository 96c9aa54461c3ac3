"""Aggregate parity agent: window sums per currency, judged once each window has settled.

Input is ``sync.parity-facts`` (each deal's contribution, keyed by currency) plus ``judge``
messages the timer sends when a window falls due; tables are written only here, from the stream.
The step is ``app.flows.parity``, run by the engine's keyed runner with an outbox; the rules
live in ``app.domain.parity.aggregate``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from decimal import Decimal
from typing import TYPE_CHECKING

import orjson

from app.domain.outputs import DriftAlert
from app.domain.parity import aggregate
from app.domain.parity.aggregate import Bucket, Thresholds
from app.engine.keyed import Input
from app.flows import parity as flow
from app.observe import metrics

if TYPE_CHECKING:
    from app.engine.bootstrap import Engine

log = logging.getLogger(__name__)

_outcomes = {
    o: metrics.flow_events.labels(flow="aggregate_parity", outcome=o) for o in ("applied", "duplicate", "redelivered")
}


class Gauges:
    """The parity gauges of the newest window judged per (window, currency)."""

    def __init__(self) -> None:
        self.latest: dict[tuple[str, str], int] = {}  # (window, currency) -> start of the last window judged

    def judged(self, key: str, bucket: Bucket) -> None:
        currency, window, start = aggregate.parse_bucket_key(key)
        if start >= self.latest.get((window, currency), 0) and bucket.ratio is not None:
            self.latest[(window, currency)] = start
            metrics.parity_ratio.labels(window=window, currency=currency).set(float(bucket.ratio))
            metrics.parity_gap_amount.labels(window=window, currency=currency).set(float(bucket.gap))


def register(engine: Engine) -> None:
    """The aggregate parity agent and its judging timer, on the engine's app."""
    app, settings, runtime, tables = engine.app, engine.settings, engine.runtime, engine.tables
    facts_topic = engine.outputs.topic("sync.parity-facts")
    windows = aggregate.parse_windows(settings.parity_windows)
    flow_tables = {t.name: t for t in (tables.parity_windows, tables.parity_entries, tables.open_alerts)}
    runner = engine.outputs.runner("parity", flow_tables, tables.parity_windows)
    gauges = Gauges()

    def thresholds() -> Thresholds:
        return Thresholds(runtime.policy.slas.accept, Decimal(str(settings.parity_gap_ratio)), windows)

    async def handle(event) -> None:
        msg = event.message
        message = orjson.loads(event.value)
        ctx = flow.Context(dt.datetime.now(dt.UTC), thresholds())
        done = await runner.run(
            Input(msg.topic, msg.partition, msg.offset, event.key), lambda: flow.step(flow_tables, message, ctx)
        )
        if done is None:
            _outcomes["redelivered"].inc()
            return
        info: flow.Judged = done.info
        if not message.get("judge"):
            _outcomes["applied" if info.applied else "duplicate"].inc()
        for key, bucket in info.judged:
            gauges.judged(key, bucket)
        for out in info.alerts:
            if isinstance(out, DriftAlert):
                metrics.drift_alerts.labels(kind=out.value["kind"], state=out.value["state"]).inc()

    @app.agent(facts_topic, name=f"{__name__}.aggregate_parity")
    async def aggregate_parity(stream):
        async for event in stream.events():
            await engine.guard.guarded(event, lambda event=event: handle(event))

    asked: dict[str, float] = {}  # currency -> when a judge message was last sent

    @app.timer(interval=settings.parity_check_s)
    async def judge_due_windows() -> None:
        """Ask the agent to judge windows that have settled (never raises: a timer error kills the worker)."""
        if app.rebalancing:
            return
        try:
            now_ms, th = int(time.time() * 1000), thresholds()
            currencies = set()
            for key, raw in list(tables.parity_windows.items()):
                text = key.decode()
                if not text.startswith("bucket|"):
                    continue  # a deal's contribution or an outbox row
                pending = aggregate.expired(text, now_ms, th) or not orjson.loads(raw)["judged"]
                if pending and aggregate.due(text, now_ms, th):
                    currencies.add(aggregate.parse_bucket_key(text)[0])
            for currency in currencies:
                if time.monotonic() - asked.get(currency, 0) >= 2 * settings.parity_check_s:
                    judge = orjson.dumps({"judge": True, "currency": currency})
                    await facts_topic.send(key=currency.encode(), value=judge)
                    asked[currency] = time.monotonic()
        except Exception:
            log.exception("judging parity windows failed; will try again")
