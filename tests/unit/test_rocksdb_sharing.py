"""Every table's RocksDB shares one block cache and one memtable budget (app/engine/rocksdb.py)."""

from __future__ import annotations

from faust.stores.rocksdb import RocksDBOptions

from app.engine import rocksdb


def test_two_stores_charge_their_memtables_to_one_budget(tmp_path):
    first = rocksdb.share(RocksDBOptions(write_buffer_size=8 << 20, use_rocksdict=True), 96, 32)
    second = rocksdb.share(RocksDBOptions(write_buffer_size=8 << 20, use_rocksdict=True), 96, 32)
    _, budget = rocksdb._shared(96, 32)
    assert budget.enabled() and budget.get_buffer_size() == 32 << 20
    before = budget.get_usage()
    a, b = first.open(tmp_path / "a"), second.open(tmp_path / "b")
    value = b"x" * 1024
    for i in range(1500):
        a[f"k{i}".encode()] = value
    after_a = budget.get_usage()
    for i in range(1500):
        b[f"k{i}".encode()] = value
    after_b = budget.get_usage()
    assert after_a - before > 1 << 20 and after_b - after_a > 1 << 20  # both stores draw on the one budget
    assert a[b"k7"] == value and b[b"k1499"] == value
    a.close()
    b.close()


def test_the_shared_options_keep_what_faust_configured_per_store():
    faust_options = RocksDBOptions(write_buffer_size=8 << 20, max_open_files=300, use_rocksdict=True)
    shared = rocksdb.share(faust_options, 96, 32)
    assert isinstance(shared, RocksDBOptions)
    assert (shared.write_buffer_size, shared.max_open_files, shared.use_rocksdict) == (8 << 20, 300, True)
