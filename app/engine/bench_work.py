"""The service's per-event work with no framework around it, for the benchmark's ceilings.

The Python ceiling (b), its durable variant (b') and the Faust cap (f) all run exactly this:
decode a CDC record by its writer schema, normalise it through the table's mapping, apply
reference rows in-process, and for deal rows ``decide`` over the deal's stored state, then
validate and encode every output as the worker does. What differs between them is only what
carries the events and the state, so their rates compare frameworks, not work.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from typing import Any

import fastavro
import orjson
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from app.cdc import messages
from app.cdc.envelope import Normaliser, key_id
from app.client_config import registry_config
from app.contracts import default_index
from app.contracts.models import model
from app.domain.changes import Op, RowChange
from app.domain.orders.deal import DealState
from app.domain.orders.decide import DealChange, decide
from app.domain.outputs import JSON, SalesOrderCommand
from app.engine import routes
from app.engine.reference_store import ReferenceStore
from app.engine.runtime import Runtime
from app.serde import wire
from app.serde.avro import AvroEncoder
from app.settings import Settings

REFERENCE = ("account", "product", "pricebook_entry")
DEALS = ("opportunity", "opportunity_line_item")
REFERENCES_ENV = "CRM_ERP_BENCH_REFERENCES"  # how many reference rows the Faust cap's keyed agent waits for

Record = tuple[str, bytes, bytes]  # topic, key, value


class Work:
    """One process's per-event work; ``sent`` collects the command ids it decided."""

    def __init__(self, s: Settings) -> None:
        self.settings = s
        self.policy = Runtime(s).policy
        self.references = ReferenceStore()
        self.tables = {s.topic(f"crm.public.{t}"): t for t in (*REFERENCE, *DEALS)}
        self.sent: set[str] = set()
        self._registry = SchemaRegistryClient(registry_config(s, {"timeout": 30}))
        self._writers: dict[int, Any] = {}
        self._encoders: dict[str, AvroEncoder] = {}
        self._normalise = Normaliser()

    def _decode(self, raw: bytes) -> tuple[Any, int]:
        sid, body = wire.split(raw)
        if sid not in self._writers:
            self._writers[sid] = fastavro.parse_schema(json.loads(self._registry.get_schema(sid).schema_str))
        return fastavro.schemaless_reader(io.BytesIO(body), self._writers[sid], None), sid

    def _encoder(self, topic: str, contract: str) -> AvroEncoder:
        if topic not in self._encoders:
            schema = default_index().expanded(contract)
            sid = self._registry.lookup_schema(f"{topic}-value", Schema(json.dumps(schema), "AVRO")).schema_id
            self._encoders[topic] = AvroEncoder(sid, schema)
        return self._encoders[topic]

    def change(self, topic: str, key: bytes, value: bytes) -> tuple[str, RowChange]:
        """The table and the normalised change of one CDC record."""
        table = self.tables[topic]
        decoded, sid = self._decode(value)
        return table, self._normalise(table, decoded, key_id(self._decode(key)[0]), sid, self._writers[sid])

    def apply_reference(self, table: str, change: RowChange) -> None:
        prefix = {"account": "account:", "product": "product:"}.get(table)
        f = change.fields
        key = f"{prefix}{change.row_id}" if prefix else f"price:{f['product_id']}|{f['currency']}"
        fields = f if table != "pricebook_entry" else {"list_price": str(f["list_price"])}
        self.references.apply(key, messages.reference(change, fields, change.op is Op.DELETE))

    @staticmethod
    def deal_of(table: str, change: RowChange) -> str:
        return change.row_id if table == "opportunity" else change.fields["opportunity_id"]

    def decide(self, state: bytes | None, event: DealChange) -> tuple[bytes, list[Record]]:
        """The deal's new state and its outputs, validated against their contracts and encoded."""
        current = DealState.model_validate_json(state) if state else None
        decision = decide(current, event, self.references, self.policy, dt.datetime.now(dt.UTC))
        ready: list[Record] = []
        for o in decision.outputs:
            if isinstance(o, SalesOrderCommand):
                self.sent.add(o.value["envelope"]["command_id"])
            where, record = routes.route(o), routes.record(o)
            topic = self.settings.topic(where.topic)
            if where.contract == JSON:  # internal topics (parity facts) are JSON, as in the agents
                ready.append((topic, o.key.encode(), orjson.dumps(record)))
                continue
            encoded = self._encoder(topic, where.contract).encode(
                model(where.contract).model_validate(record).to_avro()
            )
            ready.append((topic, o.key.encode(), encoded))
        return decision.state.model_dump_json(exclude_defaults=True).encode(), ready
