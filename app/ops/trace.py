"""``crm-erp-sync trace``: one deal's messages read from the service's topics, then the pure timeline.

Each topic of ``app.readmodels.trace.READ_ORDER`` (under ``Settings.topic_prefix``) is read like the
reconcile job reads the changelog: partitions assigned, never subscribed, nothing committed, from
the beginning up to the end offsets captured at the start (one snapshot across all topics). Keys
decide what is worth decoding; Avro values are decoded with their writer schema fetched by id from
the registry, union branches named (``(full name, record)``). Missing topics are skipped.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from typing import Any

import fastavro
import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from app.client_config import kafka_address, kafka_config, registry_config
from app.domain.errors import ReasonCode, SyncError
from app.ops.reconcile import TIMEOUT_S
from app.readmodels.trace import AVRO_TOPICS, DEAD_LETTER, DEAL_CHANGES, READ_ORDER, Deal, Entry, Record, timeline
from app.serde import wire
from app.serde.registry import parse
from app.settings import Settings


class TraceError(Exception):
    """The topics or the registry cannot be read; the message says why and what to check."""


class AvroReader:
    """Wire-format Avro to Python values, writer schema by id from the registry (cached)."""

    def __init__(self, s: Settings) -> None:
        self._url = s.registry_url
        self._client = SchemaRegistryClient(registry_config(s, {"timeout": TIMEOUT_S}))
        self._schemas: dict[int, dict[str, Any]] = {}

    def _schema(self, schema_id: int) -> dict[str, Any]:
        if schema_id not in self._schemas:
            try:
                schema = self._client.get_schema(schema_id)
            except SchemaRegistryError as exc:
                if exc.http_status_code == 404:
                    raise SyncError(
                        ReasonCode.UNKNOWN_SCHEMA_ID, f"schema id {schema_id} is not in the registry"
                    ) from exc
                raise TraceError(f"schema registry at {self._url} failed: {exc}") from exc
            except Exception as exc:  # the client's transport errors (httpx or httpx2, whichever it found)
                raise TraceError(f"cannot reach the schema registry at {self._url}: {exc!r}") from exc
            self._schemas[schema_id] = parse(schema.schema_str)
        return self._schemas[schema_id]

    def decode(self, data: bytes | None) -> Any:
        """The decoded value; SyncError when the bytes are not a readable Avro message."""
        schema_id, body = wire.split(data)
        schema = self._schema(schema_id)
        try:
            return fastavro.schemaless_reader(io.BytesIO(body), schema, None, return_record_name=True)
        except Exception as exc:  # fastavro raises EOFError, ValueError, UnicodeDecodeError, IndexError…
            raise SyncError(ReasonCode.AVRO_DECODE_ERROR, f"schema id {schema_id}: {exc!r}") from exc


def snapshot_consumer(s: Settings) -> Consumer:
    """A consumer for reading topics by assignment (never joins its group, never commits)."""
    return Consumer(
        kafka_config(
            s,
            {
                "group.id": f"{s.app_id}-trace",  # librdkafka wants one; never joined (assign) nor committed
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "enable.partition.eof": True,
                "allow.auto.create.topics": False,
                "log_level": 2,  # connection failures surface as one TraceError, not a log line per retry
            },
        )
    )


def end_offsets(consumer: Consumer, topic: str, partitions: list[int], timeout_s: float = TIMEOUT_S) -> dict[int, int]:
    """The current end offset of every non-empty partition of ``topic``."""
    ends: dict[int, int] = {}
    for p in partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
        if high > low:
            ends[p] = high
    return ends


def messages(consumer: Consumer, topic: str, ends: dict[int, int], timeout_s: float = TIMEOUT_S) -> Iterator[Message]:
    """Every message of ``topic`` from the beginning up to ``ends`` (partition: end offset)."""
    ends = dict(ends)
    if not ends:
        return
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
    try:
        idle_since = time.monotonic()
        while ends:
            msg = consumer.poll(0.5)
            if msg is None:
                if time.monotonic() - idle_since > timeout_s:
                    raise TraceError(f"{topic}: no records for {timeout_s}s; partitions {sorted(ends)} unfinished")
                continue
            idle_since = time.monotonic()
            p = msg.partition()
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    ends.pop(p, None)
                    continue
                raise TraceError(f"reading {topic} failed: {msg.error()}")
            if p not in ends or msg.offset() >= ends[p]:
                ends.pop(p, None)  # written after the start: not part of this trace
                continue
            yield msg
            if msg.offset() >= ends[p] - 1:
                ends.pop(p)
    finally:
        consumer.unassign()


def _headers(msg: Message) -> dict[str, str]:
    return {k: (v or b"").decode(errors="replace") for k, v in (msg.headers() or [])}


def _key(msg: Message, name: str, avro: AvroReader) -> str | None:
    raw = msg.key()
    if raw is None:
        return None
    if name == DEAD_LETTER and len(raw) >= wire.HEADER_SIZE and raw[0] == wire.MAGIC:
        try:  # a CDC key: {"id": <row id>}
            key = avro.decode(raw)
        except SyncError:
            key = None
        if isinstance(key, dict) and key.get("id") is not None:
            return str(key["id"])
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return None


def _value(msg: Message, name: str, avro: AvroReader) -> tuple[Any, str | None]:
    """``(value, error)`` of a message: JSON, Avro, or nothing (dead letters keep their bytes unread)."""
    if msg.value() is None or name == DEAD_LETTER:
        return None, None
    try:
        if name == DEAL_CHANGES:
            return orjson.loads(msg.value()), None
        if name in AVRO_TOPICS:
            return avro.decode(msg.value()), None
    except orjson.JSONDecodeError as exc:
        return None, f"not JSON: {exc}"
    except SyncError as exc:
        return None, f"{exc.reason}: {exc.detail}"
    return None, None


def read(s: Settings, opp: str, timeout_s: float = TIMEOUT_S) -> list[Record]:
    """The records of deal ``opp`` in every topic of the trace that exists on the cluster."""
    consumer = snapshot_consumer(s)
    avro = AvroReader(s)
    try:
        try:
            meta = consumer.list_topics(timeout=timeout_s)  # all topics: asking for one may auto-create it
        except KafkaException as exc:
            raise TraceError(f"cannot reach Kafka at {kafka_address(s)}: {exc}") from exc
        topics = {name: s.topic(name) for name in READ_ORDER if s.topic(name) in meta.topics}  # others: skipped
        try:
            ends = {t: end_offsets(consumer, t, sorted(meta.topics[t].partitions), timeout_s) for t in topics.values()}
            deal = Deal(opp)
            records: list[Record] = []
            for name, topic in topics.items():
                records += _read_topic(consumer, avro, deal, name, topic, ends[topic])
        except KafkaException as exc:
            raise TraceError(f"reading from Kafka at {s.kafka_bootstrap} failed: {exc}") from exc
        return records
    finally:
        consumer.close()


def _read_topic(
    consumer: Consumer, avro: AvroReader, deal: Deal, name: str, topic: str, ends: dict[int, int]
) -> list[Record]:
    records = []
    for msg in messages(consumer, topic, ends):
        key = _key(msg, name, avro)
        if not deal.wants(name, key):
            continue
        value, error = _value(msg, name, avro)
        _, ts = msg.timestamp()
        rec = Record(name, msg.partition(), msg.offset(), ts if ts >= 0 else None, key, value, _headers(msg), error)
        if deal.owns(rec):
            records.append(rec)
    return records


def run(s: Settings, opp: str, since_ms: int | None = None, verbose: bool = False) -> list[Entry]:
    """The timeline of deal ``opp``: TraceError when Kafka or the registry cannot be read."""
    return timeline(read(s, opp), opp, since_ms=since_ms, verbose=verbose, prefix=s.topic_prefix)
