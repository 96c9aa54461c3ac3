"""Exception state and escalation: every exception and resolution folded into one row per exception id.

``route_exception_records`` decodes both record topics and re-keys them by exception id through
``sync.exception-ledger``; ``keep_exception_ledger`` folds them into the ``exception-ledger`` table
(the state ``crm-erp-sync exceptions`` reads) and escalates open exceptions past their SLA. A timer
turns due SLAs into check messages, so the table is written only from the stream. The rules live in
``app.domain.exception_state`` and ``app.domain.escalation``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

import orjson

from app.domain import escalation, exception_state
from app.domain.outputs import EXCEPTION, RESOLUTION
from app.engine import outputs
from app.engine.app import app, settings
from app.engine.guard import guarded
from app.engine.runtime import runtime
from app.engine.tables import escalation_due, exception_ledger
from app.observe import metrics

log = logging.getLogger(__name__)

records = app.topic(
    settings.topic("sync.exceptions"),
    settings.topic("sync.exception-resolutions"),
    key_serializer="raw",
    value_serializer="raw",
)
ledger_topic = outputs.topic("sync.exception-ledger")
_exceptions_topic = settings.topic("sync.exceptions")
_decoders = {"exception": runtime.decoder(EXCEPTION), "resolution": runtime.decoder(RESOLUTION)}
ROUTES = escalation.load(settings.escalation_rules)


async def route(event) -> None:
    kind = "exception" if event.message.topic == _exceptions_topic else "resolution"
    record = exception_state.jsonable((await _decoders[kind].decode(event.value)).value)
    await ledger_topic.send(key=record["exception_id"].encode(), value=orjson.dumps({kind: record}))


@app.agent(records)
async def route_exception_records(stream):
    async for event in stream.events():
        await guarded(event, lambda event=event: route(event))


async def fold(event) -> None:
    key, message = event.key, orjson.loads(event.value)
    raw = exception_ledger.get(key)
    row = orjson.loads(raw) if raw else None
    now = dt.datetime.now(dt.UTC)
    if "exception" in message:
        row, outs = exception_state.on_exception(row, message["exception"], now)
    elif "resolution" in message:
        row, outs = exception_state.on_resolution(row, message["resolution"], now)
    else:
        row, outs = exception_state.on_check(row, ROUTES, now)
    if row is None:
        return
    ready = await outputs.prepare(outs)
    exception_ledger[key] = orjson.dumps(row)
    due = exception_state.escalation_due_ms(row)
    if due is None:
        escalation_due.pop(key, None)
    elif escalation_due.get(key) != str(due).encode():
        escalation_due[key] = str(due).encode()
    await outputs.send(ready)
    for out in outs:
        if out.topic == "sync.escalations":
            metrics.escalations.labels(team=out.value["route_team"], mode=out.value["mode"]).inc()


@app.agent(ledger_topic)
async def keep_exception_ledger(stream):
    async for event in stream.events():
        await guarded(event, lambda event=event: fold(event))


_asked: dict[bytes, bytes] = {}  # due SLA already turned into a check (until the agent moves it)


@app.timer(interval=settings.escalation_check_s)
async def check_exception_slas() -> None:
    """Ask the ledger agent to escalate exceptions past their SLA (never raises: it would kill the worker)."""
    if app.rebalancing:
        return
    try:
        now_ms = time.time() * 1000
        for key, value in list(escalation_due.items()):
            if int(value) <= now_ms and _asked.get(key) != value:
                await ledger_topic.send(key=key, value=orjson.dumps({"check": True}))
                _asked[key] = value
        if len(_asked) > 100_000:
            _asked.clear()
    except Exception:
        log.exception("checking exception SLAs failed; will try again")
