"""Faust's table over a store that writes at each commit (app/engine/checkpoint.py).

Why: stock faust-streaming 0.15 sends a changelog message through ``Topic.send_soon`` (a message
future, the producer buffer's queue and task, sensors, a done callback) and writes RocksDB for
every table write; that cost more than the rest of the write, and most rows are written again
before the next commit. Here a write only lands in the store's in-memory rows, and the checkpoint
sends the last value per key and writes one RocksDB batch per partition at the commit.

Reads, too, are one store lookup instead of two: see ``__getitem__``. Every table's RocksDB shares
one block cache and memtable budget: app/engine/rocksdb.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import faust
from faust import stores
from faust.stores.rocksdb import Store as RocksDBStore

from app.engine.checkpoint import BufferedStore
from app.engine.rocksdb import share
from app.settings import get_settings


class Table(faust.Table):
    def _new_store_by_url(self, url: Any) -> Any:
        """The buffered RocksDB store (Faust's, with writes held to the checkpoint), its RocksDB
        options sharing the worker's block cache and memtable budget."""
        if stores.by_url(url) is not RocksDBStore:
            raise ValueError(f"{self.name}: the engine's tables need RocksDB (store={url!r})")
        store = BufferedStore(
            url,
            self.app,
            self,
            table_name=self.name,
            key_type=self.key_type,
            key_serializer=self.key_serializer,
            value_serializer=self.value_serializer,
            value_type=self.value_type,
            loop=self.loop,
            options=self.options,
        )
        s = get_settings()
        store.rocksdb_options = share(store.rocksdb_options, s.rocksdb_cache_mb, s.rocksdb_memtable_mb)
        return store

    def prefixed(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """The rows whose key starts with ``prefix``: the keyed runner's outbox rows, without reading
        the whole table."""
        return self.data.prefixed(prefix)

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
        """Nothing is sent here: the checkpoint sends the row's last value at the commit. Returns
        what ``on_key_set`` reads (the partition, the event's)."""
        return SimpleNamespace(message=SimpleNamespace(partition=partition))
