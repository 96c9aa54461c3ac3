"""``crm-erp-sync topics apply|check``: the catalog applied to the cluster as code, idempotently.

The catalog comes through an environment profile (``app.catalog.Profile``): partitions,
replication and ``min.insync.replicas`` per environment. ``apply`` creates missing topics and sets
configs; it never adds partitions to an existing topic (every topic here is keyed: more partitions
move keys to other partitions, so a deal's or an account's later messages would overtake its
earlier ones and its table rows would sit in a partition that no longer receives them), and it
cannot change an existing topic's replication (that is a partition reassignment). Both are
reported, with what to do.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
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


def _describe(admin: AdminClient, names: list[str]) -> tuple[dict[str, int], dict[str, int], dict[str, dict[str, str]]]:
    """Partition counts, replication factors and topic configs of the ``names`` that exist."""
    meta = admin.list_topics(timeout=TIMEOUT_S).topics
    partitions = {n: len(meta[n].partitions) for n in names if n in meta}
    replication = {n: min(len(p.replicas) for p in meta[n].partitions.values()) for n in partitions}
    configs: dict[str, dict[str, str]] = {}
    pending = list(partitions)
    deadline = time.monotonic() + TIMEOUT_S
    while pending:
        futures = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, n) for n in pending])
        pending = []
        for res, fut in futures.items():
            try:
                configs[res.name] = {k: v.value for k, v in fut.result(timeout=TIMEOUT_S).items()}
            except KafkaException as exc:
                # a topic just created is listed by one broker before another (asked for its configs)
                # knows it: seen on the three-broker cluster right after `topics apply`
                if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART or time.monotonic() > deadline:
                    raise
                pending.append(res.name)
        if pending:
            time.sleep(0.2)
    return partitions, replication, configs


def check(s: Settings, specs: list[TopicSpec] | tuple[TopicSpec, ...]) -> list[Drift]:
    """Every difference between the catalog and the cluster (missing topic, partitions, config).
    A producer-owned topic is judged by its existence only: its partitions and configs are the producer's."""
    admin = admin_client(s)
    names = {s.topic(t.name): t for t in specs}
    partitions, replication, configs = _describe(admin, list(names))
    drift: list[Drift] = []
    for name, spec in names.items():
        if name not in partitions:
            drift.append(Drift(name, "existence", "present", "missing"))
            continue
        if spec.owned_by == "producer":
            continue
        if partitions[name] != spec.partitions:
            drift.append(Drift(name, "partitions", str(spec.partitions), str(partitions[name])))
        if replication[name] != spec.replication:
            drift.append(Drift(name, "replication", str(spec.replication), str(replication[name])))
        for key, want in spec.broker_config().items():
            have = configs[name].get(key)
            if have != want:
                drift.append(Drift(name, key, want, str(have)))
    return drift


def apply(
    s: Settings, specs: list[TopicSpec] | tuple[TopicSpec, ...], say=print, refused: list[str] | None = None
) -> list[str]:
    """Create missing topics and set configs; returns what changed (empty: nothing to do). What it
    leaves for an operator (partitions, replication, a topic the cluster refused) goes to ``refused``."""
    admin = admin_client(s)
    changes: list[str] = []
    refused = refused if refused is not None else []
    for d in check(s, specs):
        spec = next(t for t in specs if s.topic(t.name) == d.topic)
        if d.what == "existence":
            new = NewTopic(d.topic, spec.partitions, spec.replication, config=spec.broker_config())
            try:
                _wait(admin.create_topics([new]), tolerate="TOPIC_ALREADY_EXISTS")
            except KafkaException as exc:
                refused.append(f"{d.topic}: not created: {exc.args[0].str()}")
                say(f"! {refused[-1]}")
                continue
        elif d.what == "partitions":
            why = (
                f"! {d.topic}: {d.cluster} partitions on the cluster, {d.catalog} in the profile: left as is. "
                f"Its key ({spec.key}) decides the partition; "
                + ("Kafka cannot remove partitions." if int(d.catalog) < int(d.cluster) else
                   "more partitions would move keys, so a key's next messages could overtake its earlier ones and "
                   "its table rows would stay where the key no longer arrives. Create a new topic with the new count "
                   "and move its producers and the workers to it (docs/operations.md, Topic profiles).")
            )  # fmt: skip
            refused.append(why.removeprefix("! "))
            say(why)
            continue
        elif d.what == "replication":
            refused.append(
                f"{d.topic}: replication {d.cluster} on the cluster, {d.catalog} in the profile: "
                "reassign its partitions (kafka-reassign-partitions); apply does not move replicas"
            )
            say(f"! {refused[-1]}")
            continue
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
