"""Checkpoint-batched table state: rows kept in memory between commits, written once per commit.

Why: stock Faust writes RocksDB and sends a changelog record for every table write, and records
the changelog offset in RocksDB separately, later. A deal step writes several rows (state, outbox,
deadlines), and a hot row (a parity window, a deal's outbox) is written many times between two
commits. Here a table write only lands in its partition's in-memory rows (reads see them first).
At each commit, before the input offsets go to the broker (``Consumer._commit_offsets`` in
app/engine/consumer.py, and after a rebalance or stop has drained the streams,
``App._consumer_wait_empty`` in app/engine/producer.py), ``Checkpoint``:

1. takes every store's rows (new writes go to fresh rows meanwhile; reads see both);
2. sends the last value per key to the table's changelog, each partition's outbox rows
   (app/engine/keyed.py) before its state rows, so a changelog cut short by a crash never holds
   a step's state without its outbox entry;
3. waits for their delivery (a failed delivery fails the commit and stops the worker);
4. writes each partition's rows as one RocksDB write batch together with the partition's
   changelog offset, so local state and the offset recovery starts from cannot disagree;
5. lets the offsets be committed.

A crash before 4 leaves RocksDB behind the changelog: recovery replays it. A crash after 4 and
before 5 leaves state ahead of the committed input: the redelivered inputs find their outbox
entries. The same guarantees as before, with one RocksDB write and one changelog record per key
per commit instead of one per table write.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import rocksdict
from faust.stores.rocksdb import Store
from faust.streams import current_event
from faust.types import TP

from app.flows.step import OUTBOX_PREFIX

log = logging.getLogger(__name__)

Rows = dict[bytes, bytes | None]  # None: the key is deleted
YIELD_EVERY = 200  # changelog records sent between two turns of the event loop


def _current_partition() -> int | None:
    event = current_event()
    return None if event is None else event.message.partition


class BufferedStore(Store):
    """Faust's RocksDB store whose writes wait in memory, per partition, for the next checkpoint."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: dict[int, Rows] = {}  # written since the last checkpoint, by partition
        self._flushing: dict[int, Rows] = {}  # taken by the checkpoint under way

    def _lookup(self, partition: int, key: bytes) -> tuple[bool, bytes | None]:
        for rows in (self._pending.get(partition), self._flushing.get(partition)):
            if rows is not None and key in rows:
                return True, rows[key]
        return False, None

    def _set(self, key: bytes, value: bytes | None) -> None:
        partition = _current_partition()
        assert partition is not None, "tables are written only from their stream"
        self._pending.setdefault(partition, {})[key] = value
        self._key_index[key] = partition

    def _del(self, key: bytes) -> None:
        partition = _current_partition()
        assert partition is not None, "tables are written only from their stream"
        self._pending.setdefault(partition, {})[key] = None
        self._key_index.pop(key, None)

    def _get(self, key: bytes) -> bytes | None:
        partition = _current_partition()
        if partition is not None:
            found, value = self._lookup(partition, key)
        else:  # a timer or a page: the key may be in any partition's rows
            found, value = False, None
            for p in {*self._pending, *self._flushing}:
                found, value = self._lookup(p, key)
                if found:
                    break
        return value if found else super()._get(key)

    def _contains(self, key: bytes) -> bool:
        return self._get(key) is not None

    def _active(self) -> Iterator[tuple[int, Any]]:
        actives = self.app.assignor.assigned_actives()
        topic = self.table.changelog_topic_name  # type: ignore[attr-defined]  # on Faust's Collection
        for partition, db in list(self._dbs.items()):
            if TP(topic, partition) in actives:
                yield partition, db

    def _merged(self, partition: int, stored: Iterator[tuple[bytes, bytes]]) -> Iterator[tuple[bytes, bytes]]:
        """``stored`` rows of ``partition`` with its in-memory rows over them."""
        memory = {**self._flushing.get(partition, {}), **self._pending.get(partition, {})}
        for key, value in stored:
            if key not in memory:
                yield key, value
        for key, value in memory.items():
            if value is not None:
                yield key, value

    def _iteritems(self) -> Iterator[tuple[bytes, bytes]]:
        for partition, db in self._active():
            yield from self._merged(partition, self._visible_items(db))

    def _iterkeys(self) -> Iterator[bytes]:
        for key, _ in self._iteritems():
            yield key

    def _itervalues(self) -> Iterator[bytes]:
        for _, value in self._iteritems():
            yield value

    def _size(self) -> int:
        return sum(1 for _ in self._iteritems())

    def prefixed(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """The rows whose key starts with ``prefix``, in every active partition (not the standbys this
        worker keeps for its peers), reading RocksDB from the first such key on and no further."""
        for partition, db in list(self._active()):

            def stored(db: Any = db) -> Iterator[tuple[bytes, bytes]]:
                for key, value in db.items(from_key=prefix):
                    if not key.startswith(prefix):
                        break
                    yield key, value

            for key, value in self._merged(partition, stored()):
                if key.startswith(prefix):
                    yield key, value

    def take(self) -> dict[int, Rows]:
        """The rows written since the last checkpoint; reads keep seeing them until ``written``."""
        self._flushing, self._pending = self._pending, {}
        return self._flushing

    def write(self, partition: int, rows: Rows, offset: int) -> None:
        """``rows`` and the changelog ``offset`` they reach, in one RocksDB write batch."""
        batch = rocksdict.WriteBatch(raw_mode=True)
        for key, value in rows.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        batch.put(self.offset_key, str(offset).encode())
        self._db_for_partition(partition).write(batch)

    def written(self) -> None:
        self._flushing = {}

    def revoke_partitions(self, table: Any, tps: set[TP]) -> None:
        for tp in tps:
            if tp.topic in table.changelog_topic.topics:
                left = len(self._pending.pop(tp.partition, {})) + len(self._flushing.pop(tp.partition, {}))
                if left:  # the drain before a revoke checkpoints; rows left here were never sent
                    log.error("%s: %d unwritten rows of revoked partition %d dropped", table.name, left, tp.partition)
        super().revoke_partitions(table, tps)


class Checkpoint:
    """Writes every buffered store's rows: changelog first, then RocksDB (see the module docstring)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._lock = asyncio.Lock()

    def _stores(self) -> list[tuple[Any, BufferedStore]]:
        found = []
        for table in self.app.tables.values():
            store = table._data  # None until the table's store is first used
            if isinstance(store, BufferedStore):
                found.append((table, store))
        return found

    async def __call__(self) -> None:
        async with self._lock:
            taken = [(table, store, store.take()) for table, store in self._stores()]  # no await before this
            taken = [(t, s, rows) for t, s, rows in taken if rows]
            if not taken:
                return
            offsets: dict[tuple[str, int], int] = {}
            producer = self.app.producer
            sent = 0
            for table, _, partitions in taken:
                topic = table.changelog_topic.get_topic_name()
                for partition, rows in partitions.items():
                    at = (table.name, partition)

                    def delivered(offset: int, at: tuple[str, int] = at) -> None:
                        offsets[at] = max(offset, offsets.get(at, -1))

                    for key in sorted(rows, key=lambda k: not k.startswith(OUTBOX_PREFIX)):  # outbox rows first
                        await producer.produce_changelog(topic, key, rows[key], partition, delivered)
                        sent += 1
                        if sent % YIELD_EVERY == 0:
                            await asyncio.sleep(0)  # let the streams run: a checkpoint is thousands of rows
            await producer.flush()
            for table, store, partitions in taken:
                for partition, rows in partitions.items():
                    store.write(partition, rows, offsets[(table.name, partition)])
                store.written()
