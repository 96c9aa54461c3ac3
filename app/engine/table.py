"""Faust's table with its changelog writes sent straight through librdkafka.

Why: the benchmark writes about three table entries per input event (deal state, row index, parity
windows...). Stock faust-streaming 0.15 sends each changelog message through ``Topic.send_soon``:
a message future, the producer buffer's queue and task, sensors, a done callback. That cost more
than the rest of the write. Here ``send_changelog`` hands raw bytes to
``Producer.produce_now`` with the partition Faust chose (the event's), and the delivery report
records the persisted offset as Faust's own callback does, so recovery starts where it would.

Anything the direct path does not cover (a non-bytes key or value, librdkafka's queue full, the
producer not started) takes Faust's own path, unchanged. Flushes cover both (app/engine/producer.py).

Reads, too, are one store lookup instead of two: see ``__getitem__``. Every table's RocksDB shares
one block cache and memtable budget: app/engine/rocksdb.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import faust
from faust.types import TP

from app.engine.producer import Producer
from app.engine.rocksdb import share
from app.settings import get_settings


class Table(faust.Table):
    _unwritten: dict[TP, int]  # delivered changelog offsets whose RocksDB write is due

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unwritten = {}

    def _new_store_by_url(self, url: Any) -> Any:
        """Faust's store, its RocksDB options sharing the worker's block cache and memtable budget."""
        store = super()._new_store_by_url(url)
        if getattr(store, "use_rocksdict", False):
            s = get_settings()
            store.rocksdb_options = share(store.rocksdb_options, s.rocksdb_cache_mb, s.rocksdb_memtable_mb)
        return store

    def prefixed(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """The rows whose key starts with ``prefix``, in each open partition, read from the first such
        key on and no further: the keyed runner's outbox rows, without reading the whole table."""
        for db in list(getattr(self.data, "_dbs", {}).values()):
            for key, value in db.items(from_key=prefix):
                if not key.startswith(prefix):
                    break
                yield key, value

    def __getitem__(self, key: Any) -> Any:
        """One RocksDB read per lookup. mode's ``FastUserDict.__getitem__`` asks the store ``key in``
        (a full read of the value) and then reads the value again; a miss goes to ``__missing__`` as there."""
        self.on_key_get(key)
        try:
            return self.data[key]
        except KeyError:
            return self.__missing__(key)

    def send_changelog(
        self,
        partition: int | None,
        key: Any,
        value: Any,
        key_serializer: Any = None,
        value_serializer: Any = None,
    ) -> Any:
        producer = self.app.producer
        if (
            partition is not None
            and isinstance(producer, Producer)
            and isinstance(key, bytes)
            and (value is None or isinstance(value, bytes))
            and not self.app.in_transaction
        ):
            topic = self.changelog_topic.get_topic_name()
            tp = TP(topic, partition)
            if producer.produce_now(topic, key, value, partition, lambda offset: self._persisted(tp, offset)):
                return SimpleNamespace(message=SimpleNamespace(partition=partition))  # what on_key_set reads
        return super().send_changelog(partition, key, value, key_serializer, value_serializer)

    def _persisted(self, tp: TP, offset: int) -> None:
        """Faust's ``_on_changelog_sent`` outside a transaction (where recovery of ``tp`` starts), one
        RocksDB write per partition per batch of delivery reports instead of one per message."""
        if not self._unwritten:
            asyncio.get_running_loop().call_soon(self._write_persisted)
        self._unwritten[tp] = max(offset, self._unwritten.get(tp, -1))

    def _write_persisted(self) -> None:
        unwritten, self._unwritten = self._unwritten, {}
        for tp, offset in unwritten.items():
            self.data.set_persisted_offset(tp, offset)
