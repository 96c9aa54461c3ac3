"""The worker's librdkafka producer (app/engine/producer.py) against the real broker and the pinned Faust."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka.admin import NewTopic
from faust.exceptions import ProducerSendError

from app.client_config import admin_client
from app.engine.credentials import faust_broker
from app.engine.producer import App, Producer
from app.settings import Settings


@pytest.fixture
def topic(platform: Settings):
    name = f"t{uuid.uuid4().hex[:10]}.rdkafka-producer"
    admin = admin_client(platform)
    admin.create_topics([NewTopic(name, 4, 1)])[name].result(30)
    yield name
    admin.delete_topics([name])[name].result(30)


def _run(platform: Settings, body) -> None:
    async def main() -> None:
        app = App(f"t{uuid.uuid4().hex[:8]}", broker=faust_broker(platform), producer_acks=-1, producer_linger_ms=5)
        producer = app.producer
        assert isinstance(producer, Producer)
        await producer.start()
        try:
            await body(producer)
        finally:
            await producer.stop()

    asyncio.run(main())


def test_unpartitioned_sends_land_where_fausts_partitioner_says(platform: Settings, topic: str) -> None:
    """Co-partitioning depends on it: Faust's ``key_partition`` (aiokafka's murmur2 partitioner),
    repartitioned streams and Kafka's Java clients must agree with where librdkafka puts a key."""
    murmur2 = DefaultPartitioner()

    async def body(producer: Producer) -> None:
        keys = [f"opp-{i}".encode() for i in range(200)]
        futures = [await producer.send(topic, k, b"v", None, None, None) for k in keys]
        sent = await asyncio.gather(*futures)
        assert {m.partition for m in sent} == {0, 1, 2, 3}
        for key, meta in zip(keys, sent, strict=True):
            assert meta.partition == murmur2(key, [0, 1, 2, 3], [0, 1, 2, 3])
            assert meta.topic == topic and meta.offset >= 0

    _run(platform, body)


def test_flush_returns_only_when_every_send_is_acknowledged(platform: Settings, topic: str) -> None:
    """Faust awaits ``flush()`` before each offset commit: nothing may still be in flight after it."""

    async def body(producer: Producer) -> None:
        futures = [await producer.send(topic, b"k", str(i).encode(), 2, None, [("h", b"1")]) for i in range(2000)]
        await producer.flush()
        assert all(f.done() and f.exception() is None for f in futures)
        offsets = [f.result().offset for f in futures]
        assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)  # in order, none twice

    _run(platform, body)


def test_flush_waits_for_what_was_sent_before_it_not_for_an_idle_producer(platform: Settings, topic: str) -> None:
    """Faust picks the offsets it commits before it flushes, so later sends need not hold the commit
    up; waiting for an idle producer made commits take 3 s under steady load."""

    async def body(producer: Producer) -> None:
        before = [await producer.send(topic, b"k", str(i).encode(), None, None, None) for i in range(500)]
        flushing = asyncio.create_task(producer.flush())
        await asyncio.sleep(0)  # the flush has started and taken what is outstanding
        later = await producer.send(f"{topic}-missing", b"k", b"v", None, None, None)  # no report for 30 s
        await asyncio.wait_for(flushing, 10)
        assert all(f.done() and f.exception() is None for f in before)
        assert not later.done()
        producer._rd.purge()  # settles ``later`` now instead of at the stop's flush
        with pytest.raises(ProducerSendError):
            await asyncio.wait_for(later, 10)

    _run(platform, body)


def test_a_message_the_broker_cannot_take_fails_with_a_send_error(platform: Settings, topic: str) -> None:
    async def body(producer: Producer) -> None:
        with pytest.raises(ProducerSendError, match=topic) as failed:
            await producer.send(topic, b"k", b"x" * (producer.max_request_size + 1), None, None, None)
        assert isinstance(failed.value.__cause__, MessageSizeTooLargeError)  # as aiokafka reports it
        fut = await producer.send(topic, b"k", b"after", None, None, None)  # the producer still works
        assert (await fut).offset >= 0

    _run(platform, body)


def test_a_delivery_that_fails_makes_every_later_flush_raise(platform: Settings, topic: str) -> None:
    """Stock Faust logs a failed delivery and commits past it; the commit must fail instead."""
    small = f"{topic}-small"
    admin = admin_client(platform)
    admin.create_topics([NewTopic(small, 1, 1, config={"max.message.bytes": "1000"})])[small].result(30)

    async def body(producer: Producer) -> None:
        await producer.produce(topic, b"k", b"fits anywhere", None)
        await producer.produce(small, b"k", b"x" * 5000, None)  # librdkafka takes it; the broker will not
        for _ in range(2):
            with pytest.raises(ProducerSendError, match=small) as failed:
                await asyncio.wait_for(producer.flush(), 30)
            assert isinstance(failed.value.__cause__, MessageSizeTooLargeError)

    try:
        _run(platform, body)
    finally:
        admin.delete_topics([small])[small].result(30)


def test_a_delivery_report_that_cannot_be_handled_fails_its_send_and_the_next_flush(
    platform: Settings, topic: str
) -> None:
    """Reports are served on the event loop: an offset callback that raises must neither stop the
    other reports nor leave its send pending (a flush would wait for it for ever)."""

    def broken(offset: int) -> None:
        raise KeyError(offset)

    async def body(producer: Producer) -> None:
        before = await producer.send(topic, b"k", b"before", 1, None, None)
        await producer.produce_changelog(topic, b"k", b"v", 1, broken)
        after = await producer.send(topic, b"k", b"after", 1, None, None)
        with pytest.raises(ProducerSendError, match="not handled") as failed:
            await asyncio.wait_for(producer.flush(), 30)
        assert isinstance(failed.value.__cause__, KeyError)
        assert (await before).offset + 2 == (await after).offset  # the broken one was delivered between

    _run(platform, body)


def test_a_checkpoint_sends_the_last_value_per_key_outbox_rows_first_then_writes_rocksdb(
    platform: Settings, topic: str, tmp_path
) -> None:
    """app/engine/checkpoint.py: rows written between commits reach the changelog once per key (the
    last value; a delete as a tombstone), a partition's outbox rows before its state rows, and RocksDB
    holds them with the offset of the last record, where recovery starts."""
    from confluent_kafka import Consumer, TopicPartition
    from faust.types import TP

    from app.client_config import kafka_config
    from app.engine.table import Table
    from tests.unit.test_checkpoint_store import event_in

    async def main() -> tuple[int | None, dict[bytes, bytes]]:
        app_id, broker = f"t{uuid.uuid4().hex[:8]}", faust_broker(platform)
        app = App(app_id, broker=broker, store="rocksdb://", datadir=str(tmp_path), Table=Table)
        table = app.Table("direct", key_type=bytes, value_type=bytes, partitions=4)
        table.changelog_topic = app.topic(topic, key_serializer="raw", value_serializer="raw")
        table._verified_source_topics_for_partitions.add("source")
        await app.producer.start()
        try:
            with event_in(2):
                for i in range(50):
                    table[f"k{i % 5}".encode()] = f"v{i}".encode()
                table[b"\x1fopp"] = b"outbox"
                del table[b"k0"]
            await app.checkpoint()
            db = table.data._db_for_partition(2)
            return table.data.persisted_offset(TP(topic, 2)), {k: v for k, v in db.items()}
        finally:
            await app.producer.stop()

    persisted, stored = asyncio.run(main())
    consumer = Consumer(kafka_config(platform, {"group.id": f"g{uuid.uuid4().hex[:8]}", "enable.auto.commit": False}))
    consumer.assign([TopicPartition(topic, 2, 0)])
    got = []
    while len(got) < 6:
        msg = consumer.poll(10)
        assert msg is not None, f"only {len(got)} of 6 changelog messages"
        got.append((msg.key(), msg.value(), msg.offset()))
    extra = consumer.poll(2)
    consumer.close()
    assert extra is None, "one record per key"
    assert got[0][:2] == (b"\x1fopp", b"outbox")  # the outbox row first
    assert sorted(g[:2] for g in got[1:]) == [
        (b"k0", None),
        (b"k1", b"v46"),
        (b"k2", b"v47"),
        (b"k3", b"v48"),
        (b"k4", b"v49"),
    ]
    assert persisted == got[-1][2]
    assert stored.pop(b"__faust\x00offset__") == str(persisted).encode()
    assert stored == {b"\x1fopp": b"outbox", b"k1": b"v46", b"k2": b"v47", b"k3": b"v48", b"k4": b"v49"}
