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
from typing import TYPE_CHECKING

import orjson

from app.agents import sla_timer
from app.domain.exceptions import escalation
from app.domain.exceptions import state as exception_state
from app.domain.outputs import EXCEPTION, RESOLUTION, Escalation
from app.engine.keyed import Input
from app.flows import ledger as flow
from app.observe import metrics

if TYPE_CHECKING:
    from app.engine.bootstrap import Engine


def register(engine: Engine) -> None:
    """The record router, the ledger agent and the SLA timer, on the engine's app."""
    app, settings, runtime, tables = engine.app, engine.settings, engine.runtime, engine.tables
    records = app.topic(
        settings.topic("sync.exceptions"),
        settings.topic("sync.exception-resolutions"),
        key_serializer="raw",
        value_serializer="raw",
    )
    ledger_topic = engine.outputs.topic("sync.exception-ledger")
    exceptions_topic = settings.topic("sync.exceptions")
    decoders = {"exception": runtime.decoder(EXCEPTION), "resolution": runtime.decoder(RESOLUTION)}
    routes = escalation.load(settings.escalation_rules)
    flow_tables = {t.name: t for t in (tables.exception_ledger, tables.escalation_due)}
    runner = engine.outputs.runner("ledger", flow_tables, tables.exception_ledger)

    async def route(event) -> None:
        kind = "exception" if event.message.topic == exceptions_topic else "resolution"
        record = exception_state.jsonable((await decoders[kind].decode(event.value)).value)
        await ledger_topic.send(key=record["exception_id"].encode(), value=orjson.dumps({kind: record}))

    @app.agent(records, name=f"{__name__}.route_exception_records")
    async def route_exception_records(stream):
        async for event in stream.events():
            await engine.guard.guarded(event, lambda event=event: route(event))

    async def fold(event) -> None:
        msg = event.message
        message = orjson.loads(event.value)
        ctx = flow.Context(routes, dt.datetime.now(dt.UTC), runtime.policy.retention, runtime.rates.current())
        done = await runner.run(
            Input(msg.topic, msg.partition, msg.offset, event.key),
            lambda: flow.step(flow_tables, event.key, message, ctx),
        )
        for out in done.outputs if done else []:
            if isinstance(out, Escalation):
                metrics.escalations.labels(team=out.value["route_team"], mode=out.value["mode"]).inc()

    @app.agent(ledger_topic, name=f"{__name__}.keep_exception_ledger")
    async def keep_exception_ledger(stream):
        async for event in stream.events():
            await engine.guard.guarded(event, lambda event=event: fold(event))

    sla_timer.register(app, tables.escalation_due, ledger_topic, settings.escalation_check_s, "check_exception_slas")
