"""Debezium change events → ``RowChange``: one shape for the raw envelope and the unwrapped form.

Raw envelope: ``op`` c/u/d/r/t with ``before``/``after`` and ``source`` (lsn, ts_ms, txId).
Unwrapped (ExtractNewRecordState): the row's columns plus ``__op``, ``__deleted``,
``__source_ts_ms`` (and ``__source_lsn`` when configured). Snapshot reads (``r``) are upserts;
truncates (``t``) are reported as such and never turned into deletes; a null value (the tombstone
that follows a delete) is ``None`` here: nothing to apply.
"""

from __future__ import annotations

from typing import Any

from app.cdc.mapping import mapping_for
from app.domain.changes import Op, Position, RowChange
from app.domain.errors import ReasonCode, SyncError

_RAW_OPS = {"c": Op.UPSERT, "u": Op.UPSERT, "r": Op.UPSERT, "d": Op.DELETE, "t": Op.TRUNCATE}


def normalise(table: str, value: dict[str, Any] | None, key_id: str | None = None) -> RowChange | None:
    """The canonical change a decoded Debezium value describes; None for a tombstone."""
    if value is None:
        return None
    if "op" in value and "source" in value:
        return _raw(table, value, key_id)
    if "__op" in value or "__deleted" in value:
        return _unwrapped(table, value)
    raise SyncError(ReasonCode.NOT_A_CDC_EVENT, f"{table}: neither a Debezium envelope nor an unwrapped row")


def _raw(table: str, value: dict[str, Any], key_id: str | None) -> RowChange:
    op = _RAW_OPS.get(value["op"])
    if op is None:
        raise SyncError(ReasonCode.NOT_A_CDC_EVENT, f"{table}: unknown op {value['op']!r}")
    source = value["source"] or {}
    position = Position(source.get("lsn"), int(source.get("ts_ms") or value.get("ts_ms") or 0))
    snapshot = value["op"] == "r"
    if op is Op.TRUNCATE:
        return RowChange(table, op, key_id or "", {}, frozenset(), position, snapshot)
    row = value["after"] if op is Op.UPSERT else value["before"]
    if row is None:
        if op is Op.DELETE and key_id is not None:  # default replica identity: before may be absent
            return RowChange(table, op, key_id, {}, frozenset(), position, snapshot)
        raise SyncError(ReasonCode.NOT_A_CDC_EVENT, f"{table}: op {value['op']!r} without a row image")
    mapped = mapping_for(table).apply(row)
    return RowChange(table, op, mapped.row_id, mapped.fields, mapped.unavailable, position, snapshot)


def _unwrapped(table: str, value: dict[str, Any]) -> RowChange:
    code = value.get("__op")
    deleted = str(value.get("__deleted", "false")).lower() == "true" or code == "d"
    op = Op.TRUNCATE if code == "t" else Op.DELETE if deleted else Op.UPSERT
    position = Position(value.get("__source_lsn"), int(value.get("__source_ts_ms") or 0))
    if op is Op.TRUNCATE:
        return RowChange(table, op, "", {}, frozenset(), position, False)
    row = {k: v for k, v in value.items() if not k.startswith("__")}
    mapped = mapping_for(table).apply(row)
    return RowChange(table, op, mapped.row_id, mapped.fields, mapped.unavailable, position, code == "r")


def key_id(key: dict[str, Any] | None) -> str | None:
    """The row id of a decoded Debezium key record (``{"id": ...}``)."""
    if isinstance(key, dict) and key.get("id") is not None:
        return str(key["id"])
    return None
