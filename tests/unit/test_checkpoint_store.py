"""Checkpoint-batched table state (app/engine/checkpoint.py) without a broker: what reads see
between checkpoints, and what a checkpoint's RocksDB write leaves behind."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace

import pytest
from faust.streams import _current_event
from faust.types import TP

from app.engine.checkpoint import BufferedStore
from app.engine.producer import App
from app.engine.table import Table


class _Event:
    def __init__(self, partition: int) -> None:
        self.message = SimpleNamespace(partition=partition, topic="source")


@contextmanager
def event_in(partition: int) -> Iterator[None]:
    """Code run as if handling an event of ``partition`` (tables are written only from streams)."""
    event = _Event(partition)
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


@pytest.fixture
def table(tmp_path) -> Iterator[Table]:
    app = App("checkpoint-test", autodiscover=False, store="rocksdb://", datadir=str(tmp_path), Table=Table)
    t = app.Table("t", key_type=bytes, value_type=bytes, partitions=2)
    topic = t.changelog_topic_name
    app.assignor.assigned_actives = lambda: {TP(topic, 0), TP(topic, 1)}  # type: ignore[method-assign]
    t._verified_source_topics_for_partitions.add("source")  # no broker to ask for partition counts
    assert isinstance(t.data, BufferedStore)
    yield t


def _stored(table: Table, partition: int) -> dict[bytes, bytes]:
    db = table.data._db_for_partition(partition)
    return {k: v for k, v in db.items() if k != table.data.offset_key}


def test_writes_wait_in_memory_and_reads_see_them_in_and_outside_an_event(table: Table) -> None:
    store: BufferedStore = table.data
    with event_in(0):
        table[b"a"] = b"1"
        store.write(0, {b"b": b"stored", b"c": b"stored"}, 7)  # an earlier checkpoint's rows
        table[b"a"] = b"2"  # overwritten before any checkpoint: only the last value is kept
        del table[b"b"]  # hides the stored row
        assert table[b"a"] == b"2" and table.get(b"b") is None and b"c" in table
    with event_in(1):
        table[b"z"] = b"9"
    assert _stored(table, 0) == {b"b": b"stored", b"c": b"stored"} and _stored(table, 1) == {}
    assert table.get(b"a") == b"2" and table.get(b"z") == b"9" and table.get(b"b") is None  # a timer's read
    assert dict(table.items()) == {b"a": b"2", b"c": b"stored", b"z": b"9"} and len(table) == 3


def test_a_checkpoint_writes_the_rows_and_the_changelog_offset_in_one_batch(table: Table) -> None:
    store: BufferedStore = table.data
    with event_in(0):
        store.write(0, {b"gone": b"x"}, 3)
        table[b"a"] = b"1"
        del table[b"gone"]
    taken = store.take()
    assert taken == {0: {b"a": b"1", b"gone": None}}
    with event_in(0):
        table[b"b"] = b"2"  # written while the checkpoint is under way: the next checkpoint's
        assert table[b"a"] == b"1"  # the taken rows stay readable until they are in RocksDB
    store.write(0, taken[0], 41)
    store.written()
    assert _stored(table, 0) == {b"a": b"1"}
    assert store.persisted_offset(TP(table.changelog_topic_name, 0)) == 41
    assert store.take() == {0: {b"b": b"2"}}


def test_prefixed_merges_the_stored_and_the_unwritten_rows(table: Table) -> None:
    store: BufferedStore = table.data
    with event_in(1):
        store.write(1, {b"\x1fold": b"o", b"\x1fdone": b"d", b"state": b"s", b"\x1e": b"before"}, 1)
        table[b"\x1fnew"] = b"n"
        del table[b"\x1fdone"]
    assert sorted(table.prefixed(b"\x1f")) == [(b"\x1fnew", b"n"), (b"\x1fold", b"o")]


def test_prefixed_and_iteration_leave_out_the_standby_partitions_kept_for_peers(table: Table) -> None:
    """A standby partition's RocksDB is open on this worker, but its outbox rows are its owner's to
    re-send and prune: the keyed runner must not index them as its own."""
    store: BufferedStore = table.data
    store.write(0, {b"\x1fmine": b"m"}, 1)
    store.write(1, {b"\x1fpeer": b"p"}, 1)  # as Faust's standby recovery writes a peer's rows
    topic = table.changelog_topic_name
    table.app.assignor.assigned_actives = lambda: {TP(topic, 0)}  # type: ignore[method-assign]
    assert list(table.prefixed(b"\x1f")) == [(b"\x1fmine", b"m")]
    assert dict(table.items()) == {b"\x1fmine": b"m"}


def test_a_revoked_partition_keeps_no_rows_in_memory(table: Table) -> None:
    store: BufferedStore = table.data
    with event_in(0):
        table[b"a"] = b"1"
    with event_in(1):
        table[b"b"] = b"2"
    store.revoke_partitions(table, {TP(table.changelog_topic_name, 0)})
    assert store.take() == {1: {b"b": b"2"}}


def test_the_drain_before_a_revoke_or_a_stop_ends_with_a_checkpoint(table: Table) -> None:
    """Faust calls ``_consumer_wait_empty(consumer, logger)`` before it revokes partitions or stops
    the tables; the rows the drained events wrote must be written before the stores are let go."""
    app, calls = table.app, []

    class Drained:
        async def wait_empty(self) -> None:
            calls.append("drained")

    async def checkpoint() -> None:
        calls.append("checkpoint")

    app.__dict__["checkpoint"] = checkpoint
    asyncio.run(app._consumer_wait_empty(Drained(), logging.getLogger("test")))
    assert calls == ["drained", "checkpoint"]
