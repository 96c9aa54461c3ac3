"""``crm-erp-sync reconcile``: the deals table's changelog read to its end, then the pure report.

The changelog is read directly (partitions assigned, never subscribed; nothing committed), so the
report needs no running worker and never joins or disturbs the worker's consumer group. It reads
up to the high watermarks captured at the start: a consistent-enough snapshot while the worker
keeps writing. Compaction may not have run yet, so the last value per key wins and a null value
(Faust's delete) removes the key.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition
from pydantic import ValidationError

from app.client_config import kafka_address, kafka_config
from app.domain.orders.deal import DealState
from app.flows.step import rows
from app.readmodels.reconcile import Report, reconcile
from app.settings import Settings

TIMEOUT_S = 15  # metadata calls, and the longest silence while partitions remain unread


class ReconcileError(Exception):
    """The changelog cannot be read; the message says why and what to check."""


class MissingTopicError(ReconcileError):
    """The topic to read does not exist (yet) on the cluster."""


def changelog_topic(s: Settings) -> str:
    return f"{s.app_id}-deals-changelog"


def read_changelog(s: Settings, timeout_s: float = TIMEOUT_S, topic: str | None = None) -> dict[bytes, bytes]:
    """The last non-null value of every key in a table changelog (default: deals), up to its current
    end; the engine's outbox rows are not the table's data and are left out."""
    latest: dict[bytes, bytes] = {}
    scan(
        s,
        topic or changelog_topic(s),
        latest,
        timeout_s,
        missing="the worker has never run against this cluster with this CRM_ERP_APP_ID",
    )
    return dict(rows(latest.items()))


def scan(
    s: Settings,
    topic: str,
    sink: dict[bytes, bytes] | Callable[[Message], None],
    timeout_s: float = TIMEOUT_S,
    missing: str = "",
) -> None:
    """Read ``topic`` from its start up to the high watermarks captured now, without joining a group.

    A dict ``sink`` folds the messages into the last non-null value per key (a changelog); a callable
    gets every message, in order per partition. MissingTopicError (``missing`` says why) when absent.
    """
    consumer = Consumer(
        kafka_config(
            s,
            {
                "group.id": f"{s.app_id}-reconcile",  # librdkafka wants one; never joined (assign) nor committed
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "enable.partition.eof": True,
                "allow.auto.create.topics": False,
                "log_level": 2,  # connection failures surface as one ReconcileError, not a log line per retry
            },
        )
    )
    try:
        try:
            meta = consumer.list_topics(timeout=timeout_s)  # all topics: asking for one may auto-create it
        except KafkaException as exc:
            raise ReconcileError(f"cannot reach Kafka at {kafka_address(s)}: {exc}") from exc
        if topic not in meta.topics:
            raise MissingTopicError(
                f"{'changelog ' if topic.endswith('-changelog') else ''}topic {topic} does not exist on "
                f"{s.kafka_bootstrap}" + (f": {missing}" if missing else "")
            )
        ends: dict[int, int] = {}
        for p in meta.topics[topic].partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
            if high > low:
                ends[p] = high
        if ends:
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
            _drain(consumer, ends, sink, timeout_s)
    finally:
        consumer.close()


def _drain(
    consumer: Consumer,
    ends: dict[int, int],
    sink: dict[bytes, bytes] | Callable[[Message], None],
    timeout_s: float,
) -> None:
    idle_since = time.monotonic()
    while ends:
        msg = consumer.poll(1.0)
        if msg is None:
            if time.monotonic() - idle_since > timeout_s:
                raise ReconcileError(f"no records for {timeout_s}s; partitions {sorted(ends)} unfinished")
            continue
        idle_since = time.monotonic()
        p = msg.partition()
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                ends.pop(p, None)
                continue
            raise ReconcileError(f"reading {msg.topic()} failed: {msg.error()}")
        if p not in ends or msg.offset() >= ends[p]:
            ends.pop(p, None)  # written after the start: not part of this snapshot
            continue
        if callable(sink):
            sink(msg)
        elif msg.key() is not None:
            if msg.value() is None:
                sink.pop(msg.key(), None)
            else:
                sink[msg.key()] = msg.value()
        if msg.offset() >= ends[p] - 1:
            ends.pop(p)


def parse(values: dict[bytes, bytes]) -> tuple[list[DealState], int]:
    """The deal states, and how many values did not parse as one."""
    states: list[DealState] = []
    bad = 0
    for raw in values.values():
        try:
            states.append(DealState.model_validate_json(raw))
        except ValidationError:
            bad += 1
    return states, bad


def run(s: Settings, since_ms: int | None = None, until_ms: int | None = None) -> Report:
    states, bad = parse(read_changelog(s))
    report = reconcile(states, since_ms, until_ms)
    report.unreadable = bad
    return report
