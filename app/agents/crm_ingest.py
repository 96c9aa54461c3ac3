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

import datetime as dt
import logging
import time
from typing import TYPE_CHECKING, Any

import orjson

from app.catalog import default_catalog
from app.cdc import messages
from app.cdc.envelope import Normaliser, key_id
from app.domain.changes import Lineage, Op, RowChange
from app.domain.errors import ReasonCode, SyncError
from app.engine.guard import replay_headers
from app.engine.keyed import Input
from app.flows import accounts as account_flow
from app.observe import metrics
from app.serde import wire

if TYPE_CHECKING:
    from app.engine.bootstrap import Engine

log = logging.getLogger(__name__)

CRM_TOPICS = [s.name for s in default_catalog() if s.domain == "crm-cdc"]
_routed = metrics.flow_events.labels(flow="ingest", outcome="routed")
_tombstones = metrics.flow_events.labels(flow="ingest", outcome="tombstone")
_decode = metrics.stage_seconds.labels(stage="decode")


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
        table = self.table_of[msg.topic]
        self.consumed[msg.topic].inc()
        started = time.perf_counter()
        limit = self.settings.max_cdc_value_bytes
        if event.value is not None and len(event.value) > limit:
            raise SyncError(
                ReasonCode.MESSAGE_TOO_LARGE,
                f"{len(event.value)} bytes, over CRM_ERP_MAX_CDC_VALUE_BYTES ({limit}): not decoded",
            )
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
            await self._reference(f"product:{change.row_id}", change, change.fields, deleted)
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
        deleted = change.op is Op.DELETE or not f.get("active", True) or f.get("list_price") is None
        await self._reference(f"price:{price_key}", change, {"list_price": f.get("list_price")}, deleted)

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
        *[s.topic(t) for t in CRM_TOPICS], ingest.row_index_topic, key_serializer="raw", value_serializer="raw"
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
