"""Exception state and escalation: every exception and resolution folded into one row per exception id.

``route_exception_records`` decodes both record topics and re-keys them by exception id through
``sync.exception-ledger``; ``keep_exception_ledger`` folds them into the ``exception-ledger`` table
(the state ``crm-erp-sync exceptions`` reads) and escalates open exceptions past their SLA, through
the engine's keyed runner (``app.flows.ledger`` is the step). A timer
turns due SLAs into check messages, so the table is written only from the stream. The rules live in
``app.domain.exceptions.state`` and ``app.domain.exceptions.escalation``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

import orjson

from app.domain.exceptions import escalation
from app.domain.exceptions import state as exception_state
from app.domain.outputs import EXCEPTION, RESOLUTION, Output
from app.engine import outputs
from app.engine.app import app, settings
from app.engine.guard import guarded
from app.engine.keyed import Input
from app.engine.runtime import runtime
from app.engine.tables import escalation_due, exception_ledger
from app.flows import ledger as flow
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
TABLES = {t.name: t for t in (exception_ledger, escalation_due)}
runner = outputs.runner("ledger", TABLES, exception_ledger)


async def route(event) -> None:
    kind = "exception" if event.message.topic == _exceptions_topic else "resolution"
    record = exception_state.jsonable((await _decoders[kind].decode(event.value)).value)
    await ledger_topic.send(key=record["exception_id"].encode(), value=orjson.dumps({kind: record}))


@app.agent(records)
async def route_exception_records(stream):
    async for event in stream.events():
        await guarded(event, lambda event=event: route(event))


async def fold(event) -> None:
    msg = event.message
    message = orjson.loads(event.value)
    ctx = flow.Context(ROUTES, dt.datetime.now(dt.UTC), runtime.policy.retention)
    done = await runner.run(
        Input(msg.topic, msg.partition, msg.offset, event.key), lambda: flow.step(TABLES, event.key, message, ctx)
    )
    for out in done.outputs if done else []:
        if isinstance(out, Output) and out.topic == "sync.escalations":
            metrics.escalations.labels(team=out.value["route_team"], mode=out.value["mode"]).inc()


@app.agent(ledger_topic)
async def keep_exception_ledger(stream):
    async for event in stream.events():
        await guarded(event, lambda event=event: fold(event))


_asked: dict[bytes, bytes] = {}  # due SLA already turned into a check (kept while it is due)


@app.timer(interval=settings.escalation_check_s)
async def check_exception_slas() -> None:
    """Ask the ledger agent to escalate exceptions past their SLA (never raises: it would kill the worker)."""
    if app.rebalancing:
        return
    try:
        now_ms = time.time() * 1000
        due = {k: v for k, v in list(escalation_due.items()) if int(v) <= now_ms}
        for key in [k for k, v in _asked.items() if due.get(k) != v]:
            del _asked[key]  # moved or removed by the agent
        for key, value in due.items():
            if _asked.get(key) != value:
                await ledger_topic.send(key=key, value=orjson.dumps({"check": True}))
                _asked[key] = value
    except Exception:
        log.exception("checking exception SLAs failed; will try again")
