"""``crm-erp-sync exceptions``: the exception ledger read from its changelog; operator resolutions produced.

The ledger's changelog is read like the deals changelog for ``reconcile`` (assigned, never
subscribed, up to the high watermarks captured at the start), so no running worker is needed and
its consumer group is never disturbed. Operator records (ExceptionResolution, AuditRecord) are
produced as registry Avro in the Confluent wire format with the latest registered version of the
topic's subject (TopicNameStrategy); subjects are never registered here (``schemas register`` does).
"""

from __future__ import annotations

import datetime as dt
import json

from confluent_kafka import KafkaException, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient, topic_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from app.client_config import kafka_address, kafka_config, registry_config
from app.contracts import default_index
from app.contracts.models import model
from app.domain.errors import ServiceError
from app.domain.outputs import Output
from app.engine import routes
from app.engine.reader import TIMEOUT_S, MissingTopicError
from app.ops.reconcile import read_changelog
from app.readmodels import exception_ledger as ledger
from app.readmodels.exception_ledger import Entry, Refused
from app.settings import Settings

FLUSH_S = 30


class OpsError(ServiceError):
    """Kafka or the registry cannot be used; the message says why and what to check."""


def ledger_topic(s: Settings) -> str:
    return ledger.changelog_topic(s.app_id)


def read_ledger(s: Settings, timeout_s: float = TIMEOUT_S) -> tuple[dict[str, Entry], int]:
    """Every ledger row by exception id, and how many values did not parse (MissingTopicError: no ledger)."""
    values = read_changelog(s, timeout_s, topic=ledger_topic(s))
    return ledger.parse_ledger(values)


def read_ledger_if_any(s: Settings, timeout_s: float = TIMEOUT_S) -> dict[str, Entry] | None:
    """The ledger rows, or None when the ledger's changelog does not exist (the worker never ran)."""
    try:
        return read_ledger(s, timeout_s)[0]
    except MissingTopicError:
        return None


class AvroOutputs:
    """Encodes domain Outputs as registry Avro and produces them, waiting for every delivery."""

    def __init__(self, s: Settings, producer: Producer | None = None) -> None:
        self.settings = s
        self.producer = producer or make_producer(s)
        self._registry = SchemaRegistryClient(registry_config(s, {"timeout": 30}))
        self._serializers: dict[str, AvroSerializer] = {}

    def _serializer(self, contract: str) -> AvroSerializer:
        if contract not in self._serializers:
            conf = {
                "auto.register.schemas": False,
                "use.latest.version": True,
                "subject.name.strategy": topic_subject_name_strategy,
            }
            schema = json.dumps(default_index().expanded(contract))
            self._serializers[contract] = AvroSerializer(self._registry, schema, conf=conf)
        return self._serializers[contract]

    def encode(self, out: Output) -> tuple[str, bytes, bytes]:
        """``(topic, key, value)`` of ``out``; OpsError when the registry cannot encode it."""
        where = routes.route(out)
        topic = self.settings.topic(where.topic)
        record = model(where.contract).model_validate(routes.record(out)).to_avro()
        try:
            value = self._serializer(where.contract)(record, SerializationContext(topic, MessageField.VALUE))
        except Exception as exc:  # SchemaRegistryError, SerializationError, httpx/OS errors
            raise OpsError(
                f"cannot encode {where.contract} for {topic} with the registry at {self.settings.registry_url}: {exc} "
                "(are the subjects registered? run `crm-erp-sync schemas register`)"
            ) from exc
        return topic, out.key.encode(), value

    def send(self, encoded: list[tuple[str, bytes, bytes]]) -> None:
        """Produce and wait for every delivery; OpsError naming what was not delivered."""
        errors: list[str] = []

        def delivered(err, msg) -> None:
            if err is not None:
                errors.append(f"{msg.topic()}: {err}")

        for topic, key, value in encoded:
            self.producer.produce(topic, key=key, value=value, on_delivery=delivered)
            self.producer.poll(0)
        left = self.producer.flush(FLUSH_S)
        if left:
            errors.append(f"{left} message(s) still undelivered after {FLUSH_S}s")
        if errors:
            raise OpsError("; ".join(errors))


def make_producer(s: Settings) -> Producer:
    return Producer(
        kafka_config(
            s,
            {
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "message.timeout.ms": FLUSH_S * 1000,
                "log_level": 2,
            },
        )
    )


def existing_topics(producer: Producer, s: Settings, timeout_s: float = TIMEOUT_S) -> set[str]:
    try:
        return set(producer.list_topics(timeout=timeout_s).topics)
    except KafkaException as exc:
        raise OpsError(f"cannot reach Kafka at {kafka_address(s)}: {exc}") from exc


# --- the three subcommands -----------------------------------------------------------------------


def list_entries(
    s: Settings,
    reason: str | None = None,
    severity: str | None = None,
    since_ms: int | None = None,
    open_only: bool = False,
) -> tuple[list[Entry], int]:
    """The matching ledger rows oldest first, and how many rows did not parse."""
    entries, bad = read_ledger(s)
    return ledger.select(entries.values(), reason, severity, since_ms, open_only), bad


def find(s: Settings, exception_id: str) -> Entry | None:
    return read_ledger(s)[0].get(exception_id)


def resolve(s: Settings, exception_id: str, operator: str, note: str, now: dt.datetime | None = None) -> list[Output]:
    """Resolve ``exception_id`` by hand: Refused when the ledger does not have it open."""
    try:
        entries: dict[str, Entry] | None = read_ledger(s)[0]
    except MissingTopicError as exc:
        raise Refused(f"exception {exception_id!r} is unknown: there is no exception ledger yet ({exc})") from exc
    outputs = ledger.resolve(entries, exception_id, operator, note, now or dt.datetime.now(dt.UTC))
    sender = AvroOutputs(s)
    sender.send([sender.encode(o) for o in outputs])
    return outputs
