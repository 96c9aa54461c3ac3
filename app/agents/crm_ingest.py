"""CRM CDC ingest: Debezium messages → deal changes (re-keyed by opportunity) and reference data.

One agent over every CRM topic of the catalog. Per message: decode key and value against the
registry (writer schema by id), normalise the raw or unwrapped envelope through the table's
declarative mapping, then route:

* opportunity / opportunity_line_item → ``sync.deal-changes`` keyed by opportunity id, so the
  whole deal lands in one partition of the deal agent (a line's delete carries only its id: the
  row index remembers which opportunity it belonged to);
* account / product / pricebook_entry → ``sync.reference-data`` (every worker holds it whole),
  and accounts also → a customer command (upsert, deactivate, merge) on ``erp.commands.customer``
  (``app.flows.accounts``, run with an outbox: the command depends on reference data its own
  output changes);

Every other route is a function of the message and the row index alone, so a redelivery after a
crash sends the same bytes again and needs no outbox.
* contact → counted only (orders do not need contacts);
* a truncate → reported (dead letter, TRUNCATE_NOT_APPLIED), never applied as deletes;
* ``sync.row-index`` (not CDC): a retired deal's lines, dropped from the row index in the partition
  that holds them (app/domain/orders/retention.py).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import TYPE_CHECKING, Any

import orjson

from app.catalog import default_catalog
from app.cdc import messages
from app.cdc.envelope import Normaliser, key_id
from app.cdc.salesforce import Gap, SalesforceNormaliser
from app.domain.changes import Lineage, Op, RowChange, keep
from app.domain.errors import ReasonCode, SyncError
from app.domain.orders import resync
from app.engine.guard import replay_headers
from app.engine.keyed import Input
from app.flows import accounts as account_flow
from app.observe import metrics
from app.serde import wire

if TYPE_CHECKING:
    from app.engine.bootstrap import Engine

log = logging.getLogger(__name__)

CRM_TOPICS = [s.name for s in default_catalog() if s.domain == "crm-cdc"]
SALESFORCE_TOPICS = [s.name for s in default_catalog() if s.domain == "salesforce-cdc"]
_routed = metrics.flow_events.labels(flow="ingest", outcome="routed")
_tombstones = metrics.flow_events.labels(flow="ingest", outcome="tombstone")
_decode = metrics.stage_seconds.labels(stage="decode")
BARRIER_WAIT_S = 5.0


def _deal_of(table: str, row_key: str | None, value: Any) -> str | None:
    """The correlation id of a row that may not map (so its quarantine still names the deal):
    an opportunity's own id, a line's opportunity_id column as written, any other row's id."""
    if table != "opportunity_line_item":
        return row_key
    row = value.get("after") or value.get("before") if isinstance(value, dict) and "op" in value else value
    return str(row["opportunity_id"]) if isinstance(row, dict) and row.get("opportunity_id") else None


class CrmIngest:
    """Decode, normalise and route one CRM change (state: the row index and the account flow's outbox)."""

    def __init__(self, engine: Engine) -> None:
        self.settings, self.runtime, self.outputs = engine.settings, engine.runtime, engine.outputs
        s = self.settings
        self.row_index_topic = s.topic("sync.row-index")  # a retired deal's lines to forget, where they live
        self.table_of = {s.topic(t): t.rsplit(".", 1)[1] for t in CRM_TOPICS}
        self.consumed = {topic: metrics.events_consumed.labels(topic=table) for topic, table in self.table_of.items()}
        self.values = engine.runtime.decoder(raw_decimals=True)  # decimals converted by the column reader
        self.keys = engine.runtime.decoder(raw_decimals=True)
        self.normalise = Normaliser()
        self.salesforce = SalesforceNormaliser(s.salesforce_integration_client or None)
        self.salesforce_topics = {s.topic(t) for t in SALESFORCE_TOPICS} | set(s.salesforce_topics)
        for topic in self.salesforce_topics:
            self.consumed[topic] = metrics.events_consumed.labels(topic="salesforce")
        self.row_index = engine.tables.row_index
        customer_views = engine.tables.customer_views
        self.accounts_tables = {customer_views.name: customer_views}
        self.accounts = engine.outputs.runner("accounts", self.accounts_tables, customer_views)  # app/flows/accounts.py

    async def _key_id(self, raw: bytes | None) -> str | None:
        if raw is None:
            return None
        try:
            wire.split(raw)
        except SyncError:
            return raw.decode("utf-8", errors="replace")  # a plain string key
        return key_id((await self.keys.decode(raw)).value)

    async def ingest(self, event, seen: dict[str, str | None]) -> None:
        """``seen["correlation_id"]`` is set as soon as it is known, for the quarantine of a row that fails later."""
        msg = event.message
        if msg.topic == self.row_index_topic:
            self._forget(orjson.loads(event.value))
            return
        if msg.topic in self.salesforce_topics:
            await self._salesforce(event, seen)
            return
        table = self.table_of[msg.topic]
        self.consumed[msg.topic].inc()
        started = time.perf_counter()
        if event.value is not None:
            self._not_too_large(event.value)
        decoded = None if event.value is None else await self.values.decode(event.value)
        row_key = await self._key_id(event.key)
        seen["correlation_id"] = _deal_of(table, row_key, decoded.value if decoded else None)
        change = (
            None
            if decoded is None
            else self.normalise(table, decoded.value, row_key, decoded.schema_id, decoded.schema)
        )
        _decode.observe(time.perf_counter() - started)
        if change is None:
            _tombstones.inc()
            return
        if change.op is Op.TRUNCATE:
            raise SyncError(ReasonCode.TRUNCATE_NOT_APPLIED, f"{table} was truncated in the CRM; nothing was deleted")
        lineage = Lineage(
            msg.topic, msg.partition, msg.offset, decoded.schema_id if decoded else None, change.position.ts_ms
        )
        await self._route(table, change, lineage, replay_headers(event))
        _routed.inc()

    def _not_too_large(self, value: bytes) -> None:
        limit = self.settings.max_cdc_value_bytes
        if len(value) > limit:
            raise SyncError(
                ReasonCode.MESSAGE_TOO_LARGE,
                f"{len(value)} bytes, over CRM_ERP_MAX_CDC_VALUE_BYTES ({limit}): not decoded",
            )

    async def _salesforce(self, event, seen: dict[str, str | None]) -> None:
        """A Salesforce change event: one row change per record id, routed as a Debezium row is; a gap
        or an overflow asks for a resync and holds the deals it touches (app/domain/orders/resync.py)."""
        msg = event.message
        self.consumed[msg.topic].inc()
        if event.value is None:
            _tombstones.inc()
            return
        self._not_too_large(event.value)
        started = time.perf_counter()
        decoded = await self.values.decode(event.value)
        header = decoded.value.get("ChangeEventHeader") if isinstance(decoded.value, dict) else None
        ids = header.get("recordIds") if isinstance(header, dict) else None
        seen["correlation_id"] = ids[0] if ids else None
        found = self.salesforce(decoded.value, decoded.schema_id, decoded.schema)
        _decode.observe(time.perf_counter() - started)
        ts = found.position.ts_ms if isinstance(found, Gap) else found[0].position.ts_ms
        lineage = Lineage(msg.topic, msg.partition, msg.offset, decoded.schema_id, ts)
        if isinstance(found, Gap):
            await self._gap(found, lineage)
        else:
            for change in found:
                await self._route(change.table, change, lineage, replay_headers(event))
        _routed.inc()

    async def _gap(self, gap: Gap, lineage: Lineage) -> None:
        """A resync request for the gap's records (or entity); the deals they belong to learn of the hole,
        and an overflow of a deal entity becomes a barrier every worker holds. A function of the event
        alone, like every route here: a redelivery sends the same request id again."""
        now = dt.datetime.now(dt.UTC)
        correlation = gap.record_ids[0] if gap.record_ids else gap.entity
        request = resync.request(gap.entity, list(gap.record_ids), gap.change_type, gap.position, gap.transaction_key,
                                 correlation, lineage, now)  # fmt: skip
        await self.outputs.send(await self.outputs.prepare([request]))
        which = ",".join(gap.record_ids) or "(the whole entity)"
        command_id = request.value["envelope"]["command_id"]
        log.warning("Salesforce %s of %s %s: resync requested (%s)", gap.change_type, gap.entity, which, command_id)
        if gap.table not in resync.ENTITIES:
            return  # reference data: the answer replaces it; no deal holds it
        if gap.overflow:
            await self.outputs.publish(
                "sync.reference-data", f"resync:{gap.table}".encode(), messages.barrier(gap.position)
            )
            await self._barrier_known(gap)
            return
        for record_id in gap.record_ids:
            opp = (
                record_id
                if gap.table == "opportunity"
                else self.row_index.get(f"line:{record_id}".encode(), b"").decode()
            )
            if not opp:
                log.warning("gap in line %s of a deal not seen yet: its resync answer will reach the deal", record_id)
                continue
            await self.outputs.publish(
                "sync.deal-changes", opp.encode(), messages.gap(opp, record_id, gap.position, lineage)
            )

    async def _barrier_known(self, gap: Gap) -> None:
        """Wait (up to BARRIER_WAIT_S) until this worker's reference data holds the overflow, so a deal
        change this worker routes after it is judged with it (the reference topic is followed by a
        thread). Other workers follow the topic on their own: there, the window is their lag."""
        refs = self.runtime.references
        deadline = time.monotonic() + BARRIER_WAIT_S
        while time.monotonic() < deadline:
            held = refs.resync_barrier(gap.table)
            if held is not None and not gap.position.after(held):
                return
            await asyncio.sleep(0.01)
        log.warning("overflow of %s not yet in the reference data after %.0f s; going on", gap.entity, BARRIER_WAIT_S)

    def _forget(self, request: dict[str, str]) -> None:
        """Drop a retired deal's line from the row index, unless the line has moved to another deal since."""
        key = request["forget"].encode()
        if self.row_index.get(key) == request["opp"].encode():
            del self.row_index[key]

    async def _route(self, table: str, change: RowChange, lineage: Lineage, headers: list | None = None) -> None:
        """``headers``: a replay's headers, carried along so the deal's history shows the replay."""
        publish = self.outputs.publish
        if table == "opportunity":
            value = messages.deal_change(change.row_id, change, lineage)
            await publish("sync.deal-changes", change.row_id.encode(), value, headers)
        elif table == "opportunity_line_item":
            index_key = f"line:{change.row_id}".encode()
            opp = change.fields.get("opportunity_id") or self.row_index.get(index_key, b"").decode() or None
            if opp is None:
                raise SyncError(ReasonCode.MAPPING_ERROR, f"line {change.row_id}: no opportunity id and none on record")
            if self.row_index.get(index_key) != opp.encode():  # a changelog write only when the line moves
                self.row_index[index_key] = opp.encode()
            await publish("sync.deal-changes", opp.encode(), messages.deal_change(opp, change, lineage), headers)
        elif table == "account":
            await self._account(change, lineage)
        elif table == "product":
            deleted = change.op is Op.DELETE
            previous = self.runtime.references.product(change.row_id)  # for fields a partial update did not send
            fields = keep(change.fields, change.unavailable, previous.model_dump() if previous else None)
            await self._reference(f"product:{change.row_id}", change, fields, deleted)
        elif table == "pricebook_entry":
            await self._price(change)

    async def _reference(self, key: str, change: RowChange, fields: dict[str, Any], deleted: bool) -> None:
        await self.outputs.publish("sync.reference-data", key.encode(), messages.reference(change, fields, deleted))

    async def _price(self, change: RowChange) -> None:
        index_key = f"price:{change.row_id}".encode()
        f = change.fields
        if f.get("product_id") and f.get("currency"):
            price_key = f"{f['product_id']}|{f['currency']}"
            if self.row_index.get(index_key) != price_key.encode():
                self.row_index[index_key] = price_key.encode()
        else:
            price_key = self.row_index.get(index_key, b"").decode()
        if not price_key:
            raise SyncError(
                ReasonCode.MAPPING_ERROR, f"price book entry {change.row_id}: no product/currency on record"
            )
        price = f.get("list_price")
        if "list_price" in change.unavailable:  # a partial update that did not change the price
            product, _, currency = price_key.partition("|")
            price = self.runtime.references.list_price(product, currency)
        active = f.get("active", True) if "active" not in change.unavailable else price is not None
        deleted = change.op is Op.DELETE or not active or price is None
        await self._reference(f"price:{price_key}", change, {"list_price": price}, deleted)

    async def _account(self, change: RowChange, lineage: Lineage) -> None:
        refs = self.runtime.references
        previous = refs.account(change.row_id)  # for the columns the change did not carry
        now = dt.datetime.now(dt.UTC)
        inp = Input(lineage.topic, lineage.partition, lineage.offset, change.row_id.encode())
        tables, user = self.accounts_tables, self.settings.integration_crm_user
        owners = self.runtime.ownership
        step = await self.accounts.run(
            inp, lambda: account_flow.step(tables, change, previous, refs, lineage, user, now, owners)
        )
        if step is not None and step.info is not None:  # None: a redelivery re-sent, or nothing to send
            kind = f"{step.info['command']['action'].title()}Customer"  # UpsertCustomer, DeactivateCustomer, …
            metrics.commands_emitted.labels(type=kind).inc()


def register(engine: Engine) -> None:
    """One agent over every CRM topic of the catalog and the row-index topic."""
    s, ingest = engine.settings, CrmIngest(engine)
    crm_topics = engine.app.topic(
        *[s.topic(t) for t in CRM_TOPICS],
        *sorted(ingest.salesforce_topics),
        ingest.row_index_topic,
        key_serializer="raw",
        value_serializer="raw",
    )

    @engine.app.agent(crm_topics, name=f"{__name__}.ingest_crm")
    async def ingest_crm(stream):
        async for event in stream.events():
            seen: dict[str, str | None] = {}
            await engine.guard.guarded(
                event,
                lambda event=event, seen=seen: ingest.ingest(event, seen),
                lambda seen=seen: seen.get("correlation_id"),
            )
