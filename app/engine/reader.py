"""Reading topics outside the worker: the operator jobs' one way to Kafka's consumer.

Two shapes. A ``Snapshot`` reads topics by assignment from their start up to the end offsets
captured when asked: it never joins a group and never commits, so a trace, a reconcile or a
replay cannot disturb the worker's consumer group, and what it reads is a consistent-enough cut
while the worker keeps writing. A ``Subscription`` follows topics as a group member, for the jobs
that keep up with a topic (the simulated ERP, the CRM writer, the benchmark's counters).

Errors reach the operator as one ``ReadError`` naming how the job tried to connect
(librdkafka's own log is silenced, or a wrong password prints one line per retry).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from app.client_config import kafka_address, kafka_config
from app.domain.errors import ServiceError
from app.settings import Settings

TIMEOUT_S = 15.0  # metadata calls, and the longest silence while partitions remain unread


class ReadError(ServiceError):
    """A topic cannot be read; the message says why and what to check."""


class MissingTopicError(ReadError):
    """The topic to read does not exist (yet) on the cluster."""


class Snapshot:
    """Topics read from their start to the end offsets captured when each read begins."""

    def __init__(self, s: Settings, purpose: str, timeout_s: float = TIMEOUT_S) -> None:
        self.settings, self.timeout_s = s, timeout_s
        self._consumer = Consumer(
            kafka_config(
                s,
                {
                    "group.id": f"{s.app_id}-{purpose}",  # librdkafka wants one; never joined (assign) nor committed
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "enable.partition.eof": True,
                    "allow.auto.create.topics": False,
                    "log_level": 2,  # connection failures surface as one ReadError, not a log line per retry
                },
            )
        )
        self._partitions: dict[str, list[int]] | None = None

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def close(self) -> None:
        self._consumer.close()

    def partitions(self) -> dict[str, list[int]]:
        """Every topic on the cluster and its partitions (all topics: asking for one may auto-create it)."""
        if self._partitions is None:
            try:
                meta = self._consumer.list_topics(timeout=self.timeout_s)
            except KafkaException as exc:
                raise ReadError(f"cannot reach Kafka at {kafka_address(self.settings)}: {exc}") from exc
            self._partitions = {name: sorted(t.partitions) for name, t in meta.topics.items()}
        return self._partitions

    def ends(self, topic: str, missing: str = "") -> dict[int, int]:
        """The current end offset of every non-empty partition of ``topic``; MissingTopicError
        (``missing`` says why it may be absent) when the cluster does not have it."""
        partitions = self.partitions().get(topic)
        if partitions is None:
            raise MissingTopicError(
                f"{'changelog ' if topic.endswith('-changelog') else ''}topic {topic} does not exist on "
                f"{self.settings.kafka_bootstrap}" + (f": {missing}" if missing else "")
            )
        ends: dict[int, int] = {}
        try:
            for p in partitions:
                low, high = self._consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=self.timeout_s)
                if high > low:
                    ends[p] = high
        except KafkaException as exc:
            raise ReadError(f"reading from Kafka at {self.settings.kafka_bootstrap} failed: {exc}") from exc
        return ends

    def messages(self, topic: str, ends: dict[int, int] | None = None) -> Iterator[Message]:
        """Every message of ``topic`` from the beginning up to ``ends`` (partition: end offset; default:
        the ends now), in order per partition."""
        ends = dict(self.ends(topic) if ends is None else ends)
        if not ends:
            return
        self._consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        try:
            yield from _until_ends(self._consumer, topic, ends, self.timeout_s)
        finally:
            self._consumer.unassign()


def _until_ends(consumer: Any, topic: str, ends: dict[int, int], timeout_s: float) -> Iterator[Message]:
    """Poll ``consumer`` (assigned from the start) until every partition reached its end in ``ends``
    (emptied as they do): a partition's end-of-partition event also ends it, as its tail may be
    control records only; a message written after the ends were captured is not part of the read."""
    idle_since = time.monotonic()
    while ends:
        msg = consumer.poll(0.5)
        if msg is None:
            if time.monotonic() - idle_since > timeout_s:
                raise ReadError(f"{topic}: no records for {timeout_s:g}s; partitions {sorted(ends)} unfinished")
            continue
        idle_since = time.monotonic()
        p = msg.partition()
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                ends.pop(p, None)
                continue
            raise ReadError(f"reading {topic} failed: {msg.error()}")
        if p not in ends or msg.offset() >= ends[p]:
            ends.pop(p, None)
            continue
        yield msg
        if msg.offset() >= ends[p] - 1:
            ends.pop(p)


def last_values(snapshot: Snapshot, topic: str, missing: str = "") -> dict[bytes, bytes]:
    """The last non-null value of every key of ``topic`` up to its current end."""
    return fold(snapshot.messages(topic, snapshot.ends(topic, missing)))


def fold(messages: Iterable[Message]) -> dict[bytes, bytes]:
    """A changelog folded as compaction would (it may not have run yet): the last value per key,
    a null value removing the key."""
    latest: dict[bytes, bytes] = {}
    for msg in messages:
        key, value = msg.key(), msg.value()
        if key is None:
            continue
        if value is None:
            latest.pop(key, None)
        else:
            latest[key] = value
    return latest


def behind(s: Settings, group: str, topics: list[str]) -> int:
    """Messages of ``topics`` (full names) that consumer group ``group`` has not committed yet."""
    consumer = Consumer(kafka_config(s, {"group.id": group, "enable.auto.commit": False}))
    try:
        metadata = consumer.list_topics(timeout=30)
        parts = [TopicPartition(t, p) for t in topics for p in metadata.topics[t].partitions]
        lag = 0
        for tp in consumer.committed(parts, timeout=30):
            _, high = consumer.get_watermark_offsets(tp, timeout=30)
            lag += max(high - max(tp.offset, 0), 0)
        return lag
    finally:
        consumer.close()


class Subscription:
    """Topics (full names) followed as a member of ``group``, from the earliest offset when the group
    has none; only messages reach the caller (a partition's error events are skipped)."""

    def __init__(self, s: Settings, topics: list[str], group: str, **config: Any) -> None:
        self._consumer = Consumer(kafka_config(s, {"group.id": group, "auto.offset.reset": "earliest", **config}))
        self._consumer.subscribe(topics)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def poll(self, timeout_s: float) -> Message | None:
        msg = self._consumer.poll(timeout_s)
        return None if msg is None or msg.error() is not None else msg

    def consume(self, n: int, timeout_s: float) -> list[Message]:
        return [m for m in self._consumer.consume(n, timeout=timeout_s) if m.error() is None]

    def commit(self, msg: Message) -> None:
        """Commit past ``msg`` and wait for the broker's answer."""
        self._consumer.commit(message=msg, asynchronous=False)

    def commit_positions(self) -> None:
        """Commit past every message handed out so far and wait for the broker's answer."""
        try:
            self._consumer.commit(asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._NO_OFFSET:  # nothing consumed since the last commit
                raise

    def close(self) -> None:
        self._consumer.close()
