"""One block cache and one memtable budget for every RocksDB instance of the worker.

Why: Faust opens one RocksDB per table and partition (10 tables x 4 partitions = 40 on one
worker) and gives each its own block cache (``RocksDBOptions.as_options`` builds a new
``rocksdict.Cache`` per database) and its own memtables. Memory then grows with the number of
tables and partitions, not with the data. Here every instance shares one LRU block cache of
``CRM_ERP_ROCKSDB_CACHE_MB`` and one ``WriteBufferManager`` that flushes memtables once all of them
together hold ``CRM_ERP_ROCKSDB_MEMTABLE_MB``. Memtables are charged to the cache, so the cache
size bounds both. The WAL stays on: the outbox (app/engine/keyed.py) relies on the local state surviving a
``kill -9`` of the process.

The Faust internals relied on: ``RocksDBOptions.as_options`` (rocksdict branch) and the store's
``rocksdb_options`` attribute, pinned in tests/unit/test_pinned_internals.py.
"""

from __future__ import annotations

from functools import cache

import rocksdict
from faust.stores.rocksdb import RocksDBOptions

MB = 1024 * 1024


@cache
def _shared(cache_mb: int, memtable_mb: int) -> tuple[rocksdict.Cache, rocksdict.WriteBufferManager]:
    block_cache = rocksdict.Cache(cache_mb * MB)
    return block_cache, rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(
        memtable_mb * MB, False, block_cache
    )


class SharedOptions(RocksDBOptions):
    """Faust's RocksDB options with the process-wide block cache and memtable budget."""

    cache_mb: int
    memtable_mb: int

    def as_options(self) -> rocksdict.Options:
        block_cache, buffers = _shared(self.cache_mb, self.memtable_mb)
        opts = rocksdict.Options(raw_mode=True)
        opts.create_if_missing(True)
        opts.set_max_open_files(self.max_open_files or -1)  # None: the OS limit is unknown; -1 is RocksDB's "no limit"
        opts.set_write_buffer_size(self.write_buffer_size)
        opts.set_target_file_size_base(self.target_file_size_base)
        opts.set_max_write_buffer_number(self.max_write_buffer_number)
        opts.set_write_buffer_manager(buffers)
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(self.bloom_filter_size, block_based=True)
        table.set_block_cache(block_cache)
        table.set_cache_index_and_filter_blocks(True)  # index and filters count against the same budget
        table.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        opts.set_block_based_table_factory(table)
        return opts


def share(options: RocksDBOptions, cache_mb: int, memtable_mb: int) -> SharedOptions:
    """``options`` (as Faust built them for one store) using the shared cache and budget."""
    shared = SharedOptions.__new__(SharedOptions)
    shared.__dict__.update(vars(options))
    shared.cache_mb, shared.memtable_mb = cache_mb, memtable_mb
    return shared
