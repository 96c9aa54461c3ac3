"""``crm-erp-sync trace``: one deal's messages read from the service's topics, then the pure timeline.

Each topic of ``app.readmodels.trace.READ_ORDER`` (under ``Settings.topic_prefix``) is read like the
reconcile job reads the changelog: partitions assigned, never subscribed, nothing committed, from
the beginning up to the end offsets captured at the start (one snapshot across all topics). Keys
decide what is worth decoding; Avro values are decoded with their writer schema fetched by id from
the registry, union branches named (``(full name, record)``). Missing topics are skipped.
"""

from __future__ import annotations

import io
from typing import Any

import fastavro
import orjson
from confluent_kafka import Message
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from app.client_config import registry_config
from app.domain.errors import ReasonCode, SyncError
from app.engine.reader import TIMEOUT_S, ReadError, Snapshot
from app.readmodels.trace import AVRO_TOPICS, DEAD_LETTER, DEAL_CHANGES, READ_ORDER, Deal, Entry, Record, timeline
from app.serde import wire
from app.serde.registry import parse
from app.settings import Settings


class TraceError(ReadError):
    """The registry cannot be read; the message says why and what to check (Kafka's: ReadError)."""


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
    avro = AvroReader(s)
    with Snapshot(s, "trace", timeout_s) as snapshot:
        existing = snapshot.partitions()
        topics = {name: s.topic(name) for name in READ_ORDER if s.topic(name) in existing}  # others: skipped
        ends = {t: snapshot.ends(t) for t in topics.values()}
        deal = Deal(opp)
        records: list[Record] = []
        for name, topic in topics.items():
            records += _read_topic(snapshot, avro, deal, name, topic, ends[topic])
        return records


def _read_topic(
    snapshot: Snapshot, avro: AvroReader, deal: Deal, name: str, topic: str, ends: dict[int, int]
) -> list[Record]:
    records = []
    for msg in snapshot.messages(topic, ends):
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
    """The timeline of deal ``opp``: ReadError when Kafka or the registry cannot be read."""
    return timeline(read(s, opp), opp, since_ms=since_ms, verbose=verbose, prefix=s.topic_prefix)
