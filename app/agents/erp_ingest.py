"""ERP order events in: decode against the registry, re-key to the deal, hand to the deal agent.

The ERP side keys its events however its producer partitions them; re-keying by the payload's
correlation id through ``sync.deal-changes`` puts every event of a deal in the partition that owns
the deal, after the CRM changes already there (FAUST-NOTES: co-partition by one normalised key).
Undecodable or incomplete events go to the dead-letter topic with their coordinates.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING

from app.cdc import messages
from app.domain.changes import Lineage
from app.domain.errors import ReasonCode, SyncError
from app.domain.feedback.lifecycle import ErpEvent, ErpKind
from app.observe import metrics

if TYPE_CHECKING:
    from app.engine.bootstrap import Engine

EVENTS_TOPIC = "erp.events.sales-order"
EVENT = "io.crmerpsync.erp.events.ErpOrderEvent"
_consumed = metrics.events_consumed.labels(topic=EVENTS_TOPIC)
_routed = metrics.flow_events.labels(flow="erp_feedback", outcome="routed")
_decode = metrics.stage_seconds.labels(stage="decode")


def _ms(value) -> int:
    return int(value.timestamp() * 1000) if isinstance(value, dt.datetime) else int(value)


def register(engine: Engine) -> None:
    """The ERP event agent, on the engine's app."""
    erp_events = engine.app.topic(engine.settings.topic(EVENTS_TOPIC), key_serializer="raw", value_serializer="raw")
    values = engine.runtime.decoder(EVENT)

    async def ingest(event) -> None:
        msg = event.message
        _consumed.inc()
        if event.value is None:
            raise SyncError(ReasonCode.NULL_VALUE, "an ERP event without a value")
        started = time.perf_counter()
        decoded = await values.decode(event.value)
        _decode.observe(time.perf_counter() - started)
        v = decoded.value
        name, body = v["event"]
        try:
            kind = ErpKind(name.rsplit(".", 1)[1])
        except ValueError as exc:
            raise SyncError(ReasonCode.SCHEMA_MISMATCH, f"unknown ERP event type {name}") from exc
        if not v["correlation_id"]:
            raise SyncError(ReasonCode.MAPPING_ERROR, f"ERP event {v['event_id']} has no correlation id")
        occurred = _ms(v["occurred_at"])
        erp_event = ErpEvent(
            v["event_id"],
            v["correlation_id"],
            v.get("command_id"),
            v.get("order_number"),
            occurred,
            kind,
            body,
            Lineage(msg.topic, msg.partition, msg.offset, decoded.schema_id, occurred),
        )
        key = v["correlation_id"].encode()
        await engine.outputs.publish("sync.deal-changes", key, messages.erp_event(erp_event))
        _routed.inc()

    @engine.app.agent(erp_events, name=f"{__name__}.ingest_erp")
    async def ingest_erp(stream):
        async for event in stream.events():
            await engine.guard.guarded(event, lambda event=event: ingest(event))
