"""Table reads (app/engine/table.py): one store lookup each, with Faust's miss behaviour."""

from __future__ import annotations

import pytest

from app.engine.producer import App
from app.engine.table import Table


class CountingStore(dict):
    """A store that counts how often it is asked."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.reads = 0

    def __contains__(self, key) -> bool:
        self.reads += 1
        return super().__contains__(key)

    def __getitem__(self, key):
        self.reads += 1
        return super().__getitem__(key)


def _table(default=None) -> tuple[Table, CountingStore]:
    app = App("changelog-table-test", autodiscover=False, store="memory://", Table=Table)
    table = app.Table("t", key_type=bytes, value_type=bytes, default=default)
    assert isinstance(table, Table)
    table._data = store = CountingStore({b"k": b"v"})
    return table, store


def test_a_hit_a_miss_and_membership_each_read_the_store_once() -> None:
    table, store = _table()
    assert table[b"k"] == b"v" and store.reads == 1
    assert table.get(b"absent") is None and store.reads == 2
    assert table.get(b"absent", b"d") == b"d" and store.reads == 3
    assert b"k" in table and store.reads == 4
    with pytest.raises(KeyError):
        table[b"absent"]


def test_a_miss_in_a_table_with_a_default_gets_the_default_as_in_faust() -> None:
    table, _ = _table(default=lambda: b"zero")
    assert table[b"absent"] == b"zero"
