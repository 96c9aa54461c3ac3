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

import orjson

from app.domain.parity import aggregate
from app.domain.parity.aggregate import Bucket, Thresholds
from app.engine import outputs
from app.engine.app import app, settings
from app.engine.guard import guarded
from app.engine.keyed import Input
from app.engine.runtime import runtime
from app.engine.tables import open_alerts, parity_entries, parity_windows
from app.flows import parity as flow
from app.observe import metrics

log = logging.getLogger(__name__)

facts_topic = outputs.topic("sync.parity-facts")
_outcomes = {
    o: metrics.flow_events.labels(flow="aggregate_parity", outcome=o) for o in ("applied", "duplicate", "redelivered")
}
_latest: dict[tuple[str, str], int] = {}  # (window, currency) -> start of the last window judged (for the gauges)


WINDOWS = aggregate.parse_windows(settings.parity_windows)
TABLES = {t.name: t for t in (parity_windows, parity_entries, open_alerts)}
runner = outputs.runner("parity", TABLES, parity_windows)


def _thresholds() -> Thresholds:
    return Thresholds(runtime.policy.slas.accept, Decimal(str(settings.parity_gap_ratio)), WINDOWS)


async def handle(event) -> None:
    msg = event.message
    message = orjson.loads(event.value)
    ctx = flow.Context(dt.datetime.now(dt.UTC), _thresholds())
    done = await runner.run(
        Input(msg.topic, msg.partition, msg.offset, event.key), lambda: flow.step(TABLES, message, ctx)
    )
    if done is None:
        _outcomes["redelivered"].inc()
        return
    info: flow.Judged = done.info
    if not message.get("judge"):
        _outcomes["applied" if info.applied else "duplicate"].inc()
    for key, bucket in info.judged:
        _gauges(key, bucket)
    for out in info.alerts:
        if out.topic == "sync.drift-alerts":
            metrics.drift_alerts.labels(kind=out.value["kind"], state=out.value["state"]).inc()


def _gauges(key: str, bucket: Bucket) -> None:
    currency, window, start = aggregate.parse_bucket_key(key)
    if start >= _latest.get((window, currency), 0) and bucket.ratio is not None:
        _latest[(window, currency)] = start
        metrics.parity_ratio.labels(window=window, currency=currency).set(float(bucket.ratio))
        metrics.parity_gap_amount.labels(window=window, currency=currency).set(float(bucket.gap))


@app.agent(facts_topic)
async def aggregate_parity(stream):
    async for event in stream.events():
        await guarded(event, lambda event=event: handle(event))


_asked: dict[str, float] = {}  # currency -> when a judge message was last sent


@app.timer(interval=settings.parity_check_s)
async def judge_due_windows() -> None:
    """Ask the agent to judge windows that have settled (never raises: a timer error kills the worker)."""
    if app.rebalancing:
        return
    try:
        now_ms, th = int(time.time() * 1000), _thresholds()
        currencies = set()
        for key, raw in list(parity_windows.items()):
            text = key.decode()
            if not text.startswith("bucket|"):
                continue  # a deal's contribution or an outbox row
            pending = aggregate.expired(text, now_ms, th) or not orjson.loads(raw)["judged"]
            if pending and aggregate.due(text, now_ms, th):
                currencies.add(aggregate.parse_bucket_key(text)[0])
        for currency in currencies:
            if time.monotonic() - _asked.get(currency, 0) >= 2 * settings.parity_check_s:
                await facts_topic.send(key=currency.encode(), value=orjson.dumps({"judge": True, "currency": currency}))
                _asked[currency] = time.monotonic()
    except Exception:
        log.exception("judging parity windows failed; will try again")
