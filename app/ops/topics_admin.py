"""``crm-erp-sync topics apply|check``: the catalog applied to the cluster as code, idempotently."""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
)

from app.catalog import TopicSpec
from app.client_config import admin_client
from app.settings import Settings

TIMEOUT_S = 30


@dataclass(frozen=True)
class Drift:
    topic: str
    what: str
    catalog: str
    cluster: str

    def __str__(self) -> str:
        return f"{self.topic}: {self.what} is {self.cluster} on the cluster, {self.catalog} in the catalog"


def _describe(admin: AdminClient, names: list[str]) -> tuple[dict[str, int], dict[str, dict[str, str]]]:
    """Partition counts and topic configs of the ``names`` that exist."""
    meta = admin.list_topics(timeout=TIMEOUT_S).topics
    partitions = {n: len(meta[n].partitions) for n in names if n in meta}
    configs: dict[str, dict[str, str]] = {}
    if partitions:
        futures = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, n) for n in partitions])
        for res, fut in futures.items():
            configs[res.name] = {k: v.value for k, v in fut.result(timeout=TIMEOUT_S).items()}
    return partitions, configs


def check(s: Settings, specs: list[TopicSpec] | tuple[TopicSpec, ...]) -> list[Drift]:
    """Every difference between the catalog and the cluster (missing topic, partitions, config).
    A producer-owned topic is judged by its existence only: its partitions and configs are the producer's."""
    admin = admin_client(s)
    names = {s.topic(t.name): t for t in specs}
    partitions, configs = _describe(admin, list(names))
    drift: list[Drift] = []
    for name, spec in names.items():
        if name not in partitions:
            drift.append(Drift(name, "existence", "present", "missing"))
            continue
        if spec.owned_by == "producer":
            continue
        if partitions[name] != spec.partitions:
            drift.append(Drift(name, "partitions", str(spec.partitions), str(partitions[name])))
        for key, want in spec.broker_config().items():
            have = configs[name].get(key)
            if have != want:
                drift.append(Drift(name, key, want, str(have)))
    return drift


def apply(s: Settings, specs: list[TopicSpec] | tuple[TopicSpec, ...], say=print) -> list[str]:
    """Create missing topics, add partitions, set configs; returns what changed (empty: nothing to do)."""
    admin = admin_client(s)
    changes: list[str] = []
    for d in check(s, specs):
        spec = next(t for t in specs if s.topic(t.name) == d.topic)
        if d.what == "existence":
            new = NewTopic(d.topic, spec.partitions, spec.replication, config=spec.broker_config())
            _wait(admin.create_topics([new]), tolerate="TOPIC_ALREADY_EXISTS")
        elif d.what == "partitions":
            if spec.partitions < int(d.cluster):
                say(f"! {d.topic}: cannot shrink from {d.cluster} to {spec.partitions} partitions; left as is")
                continue
            _wait(admin.create_partitions([NewPartitions(d.topic, spec.partitions)]))
        else:
            res = ConfigResource(
                ConfigResource.Type.TOPIC,
                d.topic,
                incremental_configs=[ConfigEntry(d.what, d.catalog, incremental_operation=AlterConfigOpType.SET)],
            )
            _wait(admin.incremental_alter_configs([res]))
        change = f"{d.topic}: {'created' if d.what == 'existence' else f'{d.what} {d.cluster} -> {d.catalog}'}"
        say(change)
        changes.append(change)
    _await_metadata(admin, [c.split(":")[0] for c in changes if c.endswith(": created")])
    return changes


def delete_prefixed(s: Settings, prefix: str) -> int:
    """Delete every topic named ``prefix``…: test and bench runs clean up after themselves."""
    if not prefix:
        raise ValueError("refusing to delete every topic: the prefix is empty")
    admin = admin_client(s)
    names = [t for t in admin.list_topics(timeout=TIMEOUT_S).topics if t.startswith(prefix)]
    if names:
        _wait(admin.delete_topics(names, operation_timeout=TIMEOUT_S), tolerate="UNKNOWN_TOPIC_OR_PART")
    return len(names)


def _await_metadata(admin: AdminClient, names: list[str]) -> None:
    """Block until created topics are visible in metadata, so an immediate re-check sees them."""
    deadline = time.monotonic() + TIMEOUT_S
    while names and time.monotonic() < deadline:
        meta = admin.list_topics(timeout=TIMEOUT_S).topics
        if all(n in meta and meta[n].partitions for n in names):
            return
        time.sleep(0.2)


def _wait(futures: dict, tolerate: str | None = None) -> None:
    for fut in futures.values():
        try:
            fut.result(timeout=TIMEOUT_S)
        except KafkaException as exc:
            if tolerate is None or exc.args[0].name() != tolerate:
                raise
