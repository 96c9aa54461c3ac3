"""Turning domain outputs into wire-format messages: validated against the contract, then encoded.

Encoding needs registry ids, which may need the network: ``prepare`` does all of it *before* the
caller writes any state, so a registry outage leaves nothing half-done and the retry is clean.
At start the worker resolves the id of every contract it writes (``warm_encoders``), so that an
outage later holds up only messages whose writer schema the worker has not seen yet, never the
first exception, alert or escalation of its kind.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import orjson
from faust.types import TP, TopicT

from app.catalog import default_catalog
from app.contracts.models import model
from app.domain.errors import ReasonCode, SyncError
from app.domain.outputs import JSON, Output, Retry
from app.engine import routes
from app.engine.failpoints import FailPoints
from app.engine.keyed import KeyedRunner, Record
from app.engine.producer import App
from app.engine.runtime import Runtime
from app.engine.table import Table
from app.flows.step import Message
from app.observe import metrics

log = logging.getLogger(__name__)

SOURCE_DOMAINS = (
    "crm-cdc",
    "salesforce-cdc",
    "erp-events",
)  # topics the CRM's CDC and the ERP write; the worker only reads them
# room left in the producer's request for the batch around the largest record an output may be
BATCH_OVERHEAD = 16 * 1024


def _encoded(headers: tuple[tuple[str, str], ...]) -> tuple[tuple[str, bytes], ...]:
    return tuple((k, v.encode()) for k, v in headers)


class Outputs:
    """The worker's way out: Faust topics by catalog name, encoding, the size check, sending, and the
    keyed runners of the flows (built once at start-up, app/engine/bootstrap.py)."""

    def __init__(self, app: App, runtime: Runtime) -> None:
        self.app, self.runtime, self.settings = app, runtime, runtime.settings
        self.failpoints = FailPoints(self.settings.failpoints)
        self.limit = app.conf.producer_max_request_size - BATCH_OVERHEAD  # the largest record an output may be
        self._topics: dict[str, TopicT] = {}
        self.stages = {s: metrics.stage_seconds.labels(stage=s) for s in ("decide", "encode", "state", "send")}

    def topic(self, name: str) -> TopicT:
        """The Faust topic of catalog topic ``name`` (raw bytes in and out)."""
        if name not in self._topics:
            self._topics[name] = self.app.topic(self.settings.topic(name), key_serializer="raw", value_serializer="raw")
        return self._topics[name]

    def raw_topic(self, full_name: str) -> TopicT:
        """A topic by its full name as found in a message header (retries and replays return there)."""
        key = f"full:{full_name}"
        if key not in self._topics:
            self._topics[key] = self.app.topic(full_name, key_serializer="raw", value_serializer="raw")
        return self._topics[key]

    def sized(self, record: Record) -> Record:
        """A record the broker will take. Checked before any state is written: a send refused after it
        would leave state that says the output went out (the input quarantined, the output lost)."""
        size = len(record.key or b"") + len(record.value or b"") + sum(len(k) + len(v) for k, v in record.headers)
        if size > self.limit:
            raise SyncError(
                ReasonCode.MESSAGE_TOO_LARGE, f"an output to {record.topic} would be {size} bytes (limit {self.limit})"
            )
        return record

    async def prepare(self, outputs: Sequence[Output | Message]) -> list[Record]:
        """Validate each output against its contract and encode it (a ``Message`` is already encoded);
        an output larger than the broker takes is a MESSAGE_TOO_LARGE error, before any state is written."""
        ready = []
        for out in outputs:
            if isinstance(out, Message):
                ready.append(Record(self.settings.topic(out.topic), out.key, out.value, out.headers, out.partition))
                continue
            where = routes.route(out)
            target = self.settings.topic(where.topic)
            value, headers = routes.record(out), _encoded(routes.headers(out))
            if where.contract == JSON:
                ready.append(Record(target, out.key.encode(), orjson.dumps(value), headers, out.partition))
                continue
            # a command sent through a retry tier goes back to its own topic, so it carries that
            # topic's schema id (tiers have no contract)
            subject = self.settings.topic(routes.route(out.command).topic) if isinstance(out, Retry) else target
            encoder = await self.runtime.encoder(subject, where.contract)
            encoded = encoder.encode(model(where.contract).model_validate(value).to_avro())
            ready.append(Record(target, out.key.encode(), encoded, headers, out.partition))
        return [self.sized(r) for r in ready]

    async def send(self, records: list[Record]) -> None:
        for r in records:
            await self.app.producer.produce(r.topic, r.key, r.value, list(r.headers) or None, r.partition)

    def runner(self, flow: str, tables: dict[str, Table], outbox: Table) -> KeyedRunner:
        """The keyed runner of ``flow`` over its Faust tables, its outbox rows in ``outbox`` (its state's table)."""
        return KeyedRunner(flow, tables, outbox, FaustWire(self), self.failpoints)

    async def publish(
        self, name: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]] | None = None
    ) -> None:
        """Send to catalog topic ``name`` by the producer's direct path (app/engine/producer.py)."""
        await self.app.producer.produce(self.settings.topic(name), key, value, headers)

    def written(self) -> list[tuple[str, str]]:
        """(topic, value contract) of each catalog topic with a contract that is not a source."""
        return [
            (self.settings.topic(s.name), s.value_contract)
            for s in default_catalog()
            if s.value_contract and s.domain not in SOURCE_DOMAINS
        ]

    async def warm_encoders(self) -> list[str]:
        """Resolve the encoder of every contract the worker writes; a failure is left to the first use.
        Returns what could not be resolved."""
        missed = []
        for topic_name, contract in self.written():
            try:
                await self.runtime.encoder(topic_name, contract)
            except Exception as exc:
                missed.append(f"{topic_name} ({exc})")
        if missed:
            log.warning("output encoders not resolved at start, each resolves on first use: %s", "; ".join(missed))
        return missed


class FaustWire:
    """The keyed runner's wire in the worker: the outputs' encoding, librdkafka's producer, the
    consumer's committed offsets (set by Faust at each commit and at the seek after an assignment)."""

    def __init__(self, outputs: Outputs) -> None:
        self.outputs = outputs
        self.prepare = outputs.prepare
        self.send = outputs.send

    async def flush(self) -> None:
        await self.outputs.app.producer.flush()

    def committed(self, topic: str, partition: int) -> int | None:
        return self.outputs.app.consumer._committed_offset.get(TP(topic, partition))

    def observe(self, stage: str, seconds: float) -> None:
        self.outputs.stages[stage].observe(seconds)
