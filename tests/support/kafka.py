"""Test helpers on the real platform: sandboxes of unique topics, a worker subprocess, topic readers."""

from __future__ import annotations

import io
import json
import os
import socket
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastavro
from confluent_kafka import Consumer, Message, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient, topic_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from app.catalog import default_catalog, profile
from app.client_config import kafka_config, registry_config, security_env
from app.contracts import default_index
from app.ops import schemas_admin, topics_admin
from app.ops.worker_process import WorkerProcess
from app.serde import wire
from app.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Sandbox:
    """Unique topics, subjects, consumer group and state folder for one test."""

    base: Settings
    tmp: Path
    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:10]}.")

    def __post_init__(self) -> None:
        self.settings = self.base.model_copy(
            update={
                "topic_prefix": self.prefix,
                "app_id": f"{self.prefix}crm-erp-sync",
                "data_dir": self.tmp / "worker",
                "web_port": free_port(),
            }
        )
        self.registry = SchemaRegistryClient(registry_config(self.settings, {"timeout": 30}))
        # TopicNameStrategy explicitly: the client's default asks the registry for associations per message
        self._deserializer = AvroDeserializer(
            self.registry, conf={"subject.name.strategy": topic_subject_name_strategy}
        )
        self._producer = Producer(kafka_config(self.settings, {"linger.ms": 5}))

    def topic(self, name: str) -> str:
        return self.settings.topic(name)

    def create(self, *names: str) -> None:
        """Create catalog topics ``names`` under this sandbox's prefix and register their contracts."""
        specs = [s for s in default_catalog() if s.name in names]
        missing = set(names) - {s.name for s in specs}
        assert not missing, f"not in the catalog: {missing}"
        topics_admin.apply(self.settings, profile(self.settings.topic_profile).applied(specs), say=lambda _: None)
        schemas_admin.register(self.settings, specs, default_index(), say=lambda _: None)

    def drop(self) -> None:
        """Delete the sandbox's topics (the service's and Faust's), so a long-lived broker stays small."""
        topics_admin.delete_prefixed(self.settings, self.prefix)

    def create_all(self) -> None:
        """Every catalog topic and subject under this sandbox's prefix."""
        self.create(*(s.name for s in default_catalog()))

    def produce_cdc(self, table: str, row_id: str, value: dict[str, Any] | None, unwrapped: bool = False) -> None:
        """A Debezium message: Avro key (``crm.public.<table>.Key``) and envelope (or unwrapped row)."""
        topic = self.topic(f"crm.public.{table}")
        kser = self._cdc_serializer(f"crm.public.{table}.Key", MessageField.KEY)
        contract = f"crm.public.{table}.{'Unwrapped' if unwrapped else 'Envelope'}"
        vser = self._cdc_serializer(contract, MessageField.VALUE)
        key = kser({"id": row_id}, SerializationContext(topic, MessageField.KEY))
        encoded = None if value is None else vser(value, SerializationContext(topic, MessageField.VALUE))
        self._producer.produce(topic, key=key, value=encoded)
        self._producer.poll(0)

    def produce_with_schema(self, name: str, key: bytes | None, schema_id: int, schema: dict, value: dict) -> None:
        """A value in the wire format with a schema registered by hand (as another producer would)."""
        buf = io.BytesIO(wire.header(schema_id))
        buf.seek(0, io.SEEK_END)
        fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), value)
        self._producer.produce(self.topic(name), key=key, value=buf.getvalue())
        self._producer.flush(30)

    def flush(self) -> None:
        self._producer.flush(30)

    def _cdc_serializer(self, contract: str, field: MessageField) -> AvroSerializer:
        cache = self.__dict__.setdefault("_serializers", {})
        if contract not in cache:
            schema = json.dumps(default_index().expanded(contract))
            conf = {"auto.register.schemas": True, "subject.name.strategy": topic_subject_name_strategy}
            cache[contract] = AvroSerializer(self.registry, schema, conf=conf)
        return cache[contract]

    def decode_named(self, msg: Message) -> dict[str, Any]:
        """Decode with union branches named: ``(full name, record)`` tuples."""
        schema_id = int.from_bytes(msg.value()[1:5], "big")
        cache = self.__dict__.setdefault("_parsed", {})
        if schema_id not in cache:
            cache[schema_id] = fastavro.parse_schema(json.loads(self.registry.get_schema(schema_id).schema_str))
        return fastavro.schemaless_reader(io.BytesIO(msg.value()[5:]), cache[schema_id], None, return_record_name=True)

    def env(self, **extra: str) -> dict[str, str]:
        s = self.settings
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_ERP_")}
        env.update(security_env(s))  # a secured platform stays secured for the worker
        env.update(
            CRM_ERP_KAFKA_BOOTSTRAP=s.kafka_bootstrap,
            CRM_ERP_REGISTRY_URL=s.registry_url,
            CRM_ERP_TOPIC_PREFIX=s.topic_prefix,
            CRM_ERP_APP_ID=s.app_id,
            CRM_ERP_TOPIC_PROFILE=s.topic_profile,
            CRM_ERP_DATA_DIR=str(s.data_dir),
            CRM_ERP_WEB_PORT=str(s.web_port),
            CRM_ERP_VALIDATION_GRACE_S="1",
            CRM_ERP_PARK_RECHECK_S="0.5",
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env

    # --- producing and reading ------------------------------------------------------
    def serializer(self, contract: str) -> AvroSerializer:
        schema = json.dumps(default_index().expanded(contract))
        conf = {
            "auto.register.schemas": False,
            "use.latest.version": True,
            "subject.name.strategy": topic_subject_name_strategy,
        }
        return AvroSerializer(self.registry, schema, conf=conf)

    def produce_avro(self, name: str, contract: str, records: Iterable[tuple[bytes | None, dict[str, Any]]]) -> int:
        topic = self.topic(name)
        ser = self.serializer(contract)
        ctx = SerializationContext(topic, MessageField.VALUE)
        n = 0
        for key, value in records:
            self._producer.produce(topic, key=key, value=ser(value, ctx))
            n += 1
            if n % 1000 == 0:
                self._producer.poll(0)
        self._producer.flush(30)
        return n

    def produce_raw(self, name: str, key: bytes | None, value: bytes | None) -> None:
        self._producer.produce(self.topic(name), key=key, value=value)
        self._producer.flush(30)

    def read(self, name: str, count: int, timeout: float = 60.0) -> list[Message]:
        """Read ``count`` messages of a topic from the beginning, or fail after ``timeout`` seconds."""
        return self.collect(name, lambda msgs: len(msgs) >= count, timeout, f"{count} messages")

    def collect(self, name: str, done, timeout: float = 60.0, what: str = "the expected messages") -> list[Message]:
        """Read a topic from the beginning until ``done(messages)`` holds, or fail after ``timeout`` s."""
        consumer = Consumer(
            kafka_config(
                self.settings,
                {
                    "group.id": f"{self.prefix}reader-{uuid.uuid4().hex[:6]}",
                    "auto.offset.reset": "earliest",
                    "enable.auto.commit": False,
                },
            )
        )
        consumer.subscribe([self.topic(name)])
        out: list[Message] = []
        deadline = time.monotonic() + timeout
        try:
            while not done(out) and time.monotonic() < deadline:
                out.extend(m for m in consumer.consume(500, timeout=0.5) if m.error() is None)
        finally:
            consumer.close()
        assert done(out), f"{self.topic(name)}: not {what} within {timeout}s ({len(out)} messages read)"
        return out

    def values(self, name: str, done, what: str, timeout: float = 60.0) -> list[dict[str, Any]]:
        """``collect`` by decoded values (union branches named): read until ``done(values)`` holds."""
        msgs = self.collect(name, lambda ms: done([self.decode_named(m) for m in ms]), timeout, what)
        return [self.decode_named(m) for m in msgs]

    def everything(self, name: str, quiet: float = 3.0) -> list[Message]:
        """Every message of a topic: read from the beginning until nothing new arrives for ``quiet`` s."""
        seen: list[Message] = []
        last = {"n": -1, "at": time.monotonic()}

        def settled(msgs: list[Message]) -> bool:
            seen[:] = msgs
            if len(msgs) != last["n"]:
                last.update(n=len(msgs), at=time.monotonic())
            return time.monotonic() - last["at"] >= quiet

        self.collect(name, settled, timeout=quiet * 20, what=f"a quiet {quiet}s")
        return seen

    def decode(self, msg: Message) -> dict[str, Any]:
        return self._deserializer(msg.value(), SerializationContext(msg.topic(), MessageField.VALUE))


def worker(sandbox: Sandbox, log: Path, **env: str) -> WorkerProcess:
    """The worker as a subprocess, configured for the sandbox."""
    return WorkerProcess(sandbox.env(**env), log)
