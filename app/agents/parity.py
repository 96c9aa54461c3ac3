"""Aggregate parity agent: window sums per currency, judged once each window has settled.

Input is ``sync.parity-facts`` (each deal's contribution, keyed by currency) plus ``judge``
messages the timer sends when a window falls due; tables are written only here, from the stream.
The rules live in ``app.domain.aggregate``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from decimal import Decimal

import orjson

from app.agents.live import track_alerts
from app.domain import aggregate
from app.domain.aggregate import Bucket, Fact, Thresholds
from app.engine import outputs
from app.engine.app import app, settings
from app.engine.guard import guarded
from app.engine.runtime import runtime
from app.engine.tables import parity_entries, parity_windows
from app.observe import metrics

log = logging.getLogger(__name__)

facts_topic = outputs.topic("sync.parity-facts")
_outcomes = {o: metrics.flow_events.labels(flow="aggregate_parity", outcome=o) for o in ("applied", "duplicate")}
_latest: dict[tuple[str, str], int] = {}  # (window, currency) -> start of the last window judged (for the gauges)


WINDOWS = aggregate.parse_windows(settings.parity_windows)


def _thresholds() -> Thresholds:
    return Thresholds(runtime.policy.slas.accept, Decimal(str(settings.parity_gap_ratio)), WINDOWS)


def _bucket(raw: bytes | None) -> Bucket:
    return Bucket.model_validate_json(raw) if raw else Bucket()


def _entry(raw: bytes | None) -> Fact | None:
    return aggregate.parse_fact(orjson.loads(raw)) if raw else None


async def handle(event) -> None:
    message = orjson.loads(event.value)
    now = dt.datetime.now(dt.UTC)
    now_ms = int(now.timestamp() * 1000)
    th = _thresholds()
    if message.get("judge"):
        currency = message["currency"]
        keys = [k.decode() for k in list(parity_windows.keys()) if k.decode().startswith(f"bucket|{currency}|")]
        buckets = {k: Bucket.model_validate_json(parity_windows[k.encode()]) for k in keys}
        expired = [k for k in keys if aggregate.expired(k, now_ms, th) and buckets[k].alert_id is None]
    else:
        fact = aggregate.parse_fact(message)
        entry_key = f"{fact.currency}|{fact.side}|{fact.opportunity_id}".encode()
        previous = _entry(parity_entries.get(entry_key))
        if previous == fact or (previous is None and fact.amount is None):
            _outcomes["duplicate"].inc()
            return
        keys = sorted(
            {
                aggregate.bucket_key(f.currency, window, start)
                for f in (previous, fact)
                if f is not None and f.amount is not None
                for window, start in aggregate.windows_of(f.at_ms, WINDOWS)
            }
        )
        buckets = {k: _bucket(parity_windows.get(k.encode())) for k in keys}
        aggregate.fold(previous, fact, buckets, WINDOWS)
        expired = []
    changed = set(buckets) if not message.get("judge") else set()
    judged = []
    for key, bucket in buckets.items():
        if not bucket.judged and aggregate.due(key, now_ms, th) and key not in expired:
            judged += aggregate.judge(key, bucket, now, th)
            changed.add(key)
            _gauges(key, bucket)
    ready = await outputs.prepare(judged)
    for key in expired:
        del parity_windows[key.encode()]
    for key in changed - set(expired):
        parity_windows[key.encode()] = buckets[key].model_dump_json().encode()
    if not message.get("judge"):
        if fact.amount is None:
            parity_entries.pop(entry_key, None)
        else:
            parity_entries[entry_key] = orjson.dumps(message)
        _outcomes["applied"].inc()
    track_alerts(judged)
    await outputs.send(ready)
    for out in judged:
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
            pending = aggregate.expired(text, now_ms, th) or not orjson.loads(raw)["judged"]
            if pending and aggregate.due(text, now_ms, th):
                currencies.add(aggregate.parse_bucket_key(text)[0])
        for currency in currencies:
            if time.monotonic() - _asked.get(currency, 0) >= 2 * settings.parity_check_s:
                await facts_topic.send(key=currency.encode(), value=orjson.dumps({"judge": True, "currency": currency}))
                _asked[currency] = time.monotonic()
    except Exception:
        log.exception("judging parity windows failed; will try again")
