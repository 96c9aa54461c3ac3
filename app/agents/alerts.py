"""The drift alert ledger: alert records and operator actions folded into one row per alert id.

``route_alert_records`` decodes ``sync.drift-alerts`` and ``sync.alert-actions`` and re-keys both by
alert id through ``sync.alert-ledger`` (one input topic: the ledger table is co-partitioned with
it); ``keep_alert_ledger`` folds them into the ``alert-ledger`` table through the engine's keyed
runner (``app.flows.alert_ledger`` is the step) and escalates alerts left unacknowledged past the
SLA of their severity. A timer turns due SLAs into check messages, as for exceptions.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import orjson

from app.agents import sla_timer
from app.domain.exceptions import escalation
from app.domain.exceptions.state import jsonable
from app.domain.outputs import DRIFT_ALERT, Escalation
from app.engine.keyed import Input
from app.flows import alert_ledger as flow
from app.observe import metrics

if TYPE_CHECKING:
    from app.engine.bootstrap import Engine

ACTION = "io.crmerpsync.sync.AlertAction"


def register(engine: Engine) -> None:
    """The alert record router, the alert ledger agent and its SLA timer, on the engine's app."""
    app, settings, runtime, tables = engine.app, engine.settings, engine.runtime, engine.tables
    records = app.topic(
        settings.topic("sync.drift-alerts"),
        settings.topic("sync.alert-actions"),
        key_serializer="raw",
        value_serializer="raw",
    )
    ledger_topic = engine.outputs.topic("sync.alert-ledger")
    alerts_topic = settings.topic("sync.drift-alerts")
    decoders = {"alert": runtime.decoder(DRIFT_ALERT), "action": runtime.decoder(ACTION)}
    routes = escalation.load(settings.escalation_rules)
    slas = escalation.alert_slas(settings.escalation_rules)
    flow_tables = {t.name: t for t in (tables.alert_ledger, tables.alert_due)}
    runner = engine.outputs.runner("alert_ledger", flow_tables, tables.alert_ledger)

    async def route(event) -> None:
        kind = "alert" if event.message.topic == alerts_topic else "action"
        record = jsonable((await decoders[kind].decode(event.value)).value)
        await ledger_topic.send(key=record["alert_id"].encode(), value=orjson.dumps({kind: record}))

    @app.agent(records, name=f"{__name__}.route_alert_records")
    async def route_alert_records(stream):
        async for event in stream.events():
            await engine.guard.guarded(event, lambda event=event: route(event))

    async def fold(event) -> None:
        msg = event.message
        message = orjson.loads(event.value)
        now = dt.datetime.now(dt.UTC)
        ctx = flow.Context(routes, slas, runtime.rates.current(), now, runtime.policy.retention)
        done = await runner.run(
            Input(msg.topic, msg.partition, msg.offset, event.key),
            lambda: flow.step(flow_tables, event.key, message, ctx),
        )
        for out in done.outputs if done else []:
            if isinstance(out, Escalation):
                metrics.escalations.labels(team=out.value["route_team"], mode=out.value["mode"]).inc()

    @app.agent(ledger_topic, name=f"{__name__}.keep_alert_ledger")
    async def keep_alert_ledger(stream):
        async for event in stream.events():
            await engine.guard.guarded(event, lambda event=event: fold(event))

    sla_timer.register(app, tables.alert_due, ledger_topic, settings.escalation_check_s, "check_alert_slas")
