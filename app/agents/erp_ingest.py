"""ERP events in: order and milestone events re-keyed to their deal; customer events into the link flow.

Order events (and milestone events, on their own topic): the ERP side keys them however its producer
partitions them; re-keying by the payload's correlation id through ``sync.deal-changes`` puts every
event of a deal in the partition that owns the deal, after the CRM changes already there
(FAUST-NOTES: co-partition by one normalised key). Customer events answer customer commands, which
go out keyed by account id; the catalog asks the ERP to key its answers the same way, and the link
flow's table is keyed so. An event keyed otherwise is refused (its link would land in a partition
that does not own the account).
Undecodable or incomplete events go to the dead-letter topic with their coordinates.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING

from app.cdc import messages
from app.domain.changes import Lineage
from app.domain.customer_links import CustomerEvent
from app.domain.errors import ReasonCode, SyncError
from app.domain.feedback.lifecycle import ErpEvent, ErpKind
from app.domain.outputs import CrmAccountUpdate
from app.engine.keyed import Input
from app.flows import customer_links as link_flow
from app.observe import metrics

if TYPE_CHECKING:
    from app.engine.bootstrap import Engine

EVENTS_TOPIC = "erp.events.sales-order"
EVENT = "io.crmerpsync.erp.events.ErpOrderEvent"
CUSTOMER_EVENTS_TOPIC = "erp.events.customer"
CUSTOMER_EVENT = "io.crmerpsync.erp.events.ErpCustomerEvent"
MILESTONE_EVENTS_TOPIC = "erp.events.milestone"
MILESTONE_EVENT = "io.crmerpsync.erp.events.ErpMilestoneEvent"
MILESTONES = {"SERVICE_ACTIVATED": ErpKind.ACTIVATED, "CUSTOMER_ACCEPTED": ErpKind.CUSTOMER_ACCEPTED}
_consumed = metrics.events_consumed.labels(topic=EVENTS_TOPIC)
_routed = metrics.flow_events.labels(flow="erp_feedback", outcome="routed")
_decode = metrics.stage_seconds.labels(stage="decode")
_milestone_consumed = metrics.events_consumed.labels(topic=MILESTONE_EVENTS_TOPIC)
_customer_consumed = metrics.events_consumed.labels(topic=CUSTOMER_EVENTS_TOPIC)
_links = metrics.flow_events.labels  # flow="customer_links", outcome: active, deactivated, merged, duplicate
_account_updates = metrics.commands_emitted.labels(type="CrmAccountUpdateCommand")


def _ms(value) -> int:
    return int(value.timestamp() * 1000) if isinstance(value, dt.datetime) else int(value)


def customer_event(v: dict, key: bytes | None) -> CustomerEvent:
    """The decoded ``ErpCustomerEvent`` ``v`` read under ``key``, checked."""
    if key is None or key.decode("utf-8", errors="replace") != v["account_id"]:
        raise SyncError(
            ReasonCode.MAPPING_ERROR,
            f"ERP customer event {v['event_id']} keyed {key!r}, not by its account id {v['account_id']!r}",
        )
    fields = {name: value for name, value in v.items() if name in CustomerEvent.model_fields}
    return CustomerEvent(**fields, occurred_at_ms=_ms(v["occurred_at"]))


def milestone_event(v: dict, lineage: Lineage) -> ErpEvent:
    """The decoded ``ErpMilestoneEvent`` ``v`` as the deal flow's ERP event (who recorded it stays out)."""
    kind = MILESTONES.get(v["milestone"])
    if kind is None:
        raise SyncError(ReasonCode.SCHEMA_MISMATCH, f"ERP milestone event {v['event_id']}: unknown {v['milestone']}")
    if not v["correlation_id"]:
        raise SyncError(ReasonCode.MAPPING_ERROR, f"ERP milestone event {v['event_id']} has no correlation id")
    occurred = _ms(v["occurred_at"])
    body = {"reference": v.get("reference"), "reached_at": occurred}
    return ErpEvent(v["event_id"], v["correlation_id"], v.get("command_id"), v.get("order_number"), occurred, kind,
                    body, lineage)  # fmt: skip


def register(engine: Engine) -> None:
    """The ERP order and milestone event agents and the customer link agent, on the engine's app."""
    _register_customer_links(engine)
    _register_milestones(engine)
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


def _register_milestones(engine: Engine) -> None:
    name = engine.settings.topic(MILESTONE_EVENTS_TOPIC)
    topic = engine.app.topic(name, key_serializer="raw", value_serializer="raw")
    values = engine.runtime.decoder(MILESTONE_EVENT)

    async def ingest(event) -> None:
        msg = event.message
        _milestone_consumed.inc()
        if event.value is None:
            raise SyncError(ReasonCode.NULL_VALUE, "an ERP milestone event without a value")
        decoded = await values.decode(event.value)
        v = decoded.value
        lineage = Lineage(msg.topic, msg.partition, msg.offset, decoded.schema_id, _ms(v["occurred_at"]))
        erp_event = milestone_event(v, lineage)
        key = erp_event.correlation_id.encode()
        await engine.outputs.publish("sync.deal-changes", key, messages.erp_event(erp_event))
        _routed.inc()

    @engine.app.agent(topic, name=f"{__name__}.ingest_milestones")
    async def ingest_milestones(stream):
        async for event in stream.events():
            await engine.guard.guarded(event, lambda event=event: ingest(event))


def _register_customer_links(engine: Engine) -> None:
    topic = engine.app.topic(engine.settings.topic(CUSTOMER_EVENTS_TOPIC), key_serializer="raw", value_serializer="raw")
    values = engine.runtime.decoder(CUSTOMER_EVENT)
    links = engine.tables.customer_links
    tables = {links.name: links}
    runner = engine.outputs.runner("customer_links", tables, links)

    async def link(event) -> None:
        msg = event.message
        _customer_consumed.inc()
        if event.value is None:
            raise SyncError(ReasonCode.NULL_VALUE, "an ERP customer event without a value")
        decoded = await values.decode(event.value)
        v = decoded.value
        customer = customer_event(v, event.key)
        lineage = Lineage(msg.topic, msg.partition, msg.offset, decoded.schema_id, customer.occurred_at_ms)
        now = dt.datetime.now(dt.UTC)
        inp = Input(msg.topic, msg.partition, msg.offset, event.key)
        account = engine.runtime.references.account(customer.account_id)
        owners = engine.runtime.ownership
        step = await runner.run(inp, lambda: link_flow.step(tables, customer, lineage, now, account, owners))
        if step is not None:  # None: a redelivery, its recorded outputs re-sent
            link = step.info
            _links(flow="customer_links", outcome="duplicate" if link is None else str(link.status).lower()).inc()
            if any(isinstance(o, CrmAccountUpdate) for o in step.outputs):
                _account_updates.inc()

    @engine.app.agent(topic, name=f"{__name__}.link_customers")
    async def link_customers(stream):
        async for event in stream.events():
            await engine.guard.guarded(event, lambda event=event: link(event), lambda event=event: _key(event))


def _key(event) -> str | None:
    """The account id the event is keyed by (the quarantine's correlation id, before decoding)."""
    return event.key.decode("utf-8", errors="replace") if event.key else None
