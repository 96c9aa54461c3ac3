"""Debezium change events → ``RowChange``: one shape for the raw envelope and the unwrapped form.

Raw envelope: ``op`` c/u/d/r/t with ``before``/``after`` and ``source`` (lsn, ts_ms, txId).
Unwrapped (ExtractNewRecordState): the row's columns plus ``__op``, ``__deleted``,
``__source_ts_ms`` and the LSN as ``__source_lsn`` or ``__lsn`` (``add.fields=source.lsn`` or
``lsn``). Snapshot reads (``r``) are upserts; truncates (``t``) are reported as such and never
turned into deletes; a null value (the tombstone that follows a delete) is ``None`` here.

Every row is read through its writer schema: the table's mapping is compiled against the row
record of that schema (``row_record``) once per schema id by a ``Normaliser``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.cdc.columns import row_columns
from app.cdc.mapping import RowReader, TableMapping, mapping_for
from app.domain.changes import Op, Position, RowChange
from app.domain.errors import ReasonCode, SyncError

_RAW_OPS = {"c": Op.UPSERT, "u": Op.UPSERT, "r": Op.UPSERT, "d": Op.DELETE, "t": Op.TRUNCATE}


def named_records(node: Any, out: dict[str, dict[str, Any]], ns: str | None = None) -> None:
    """Every record defined in a schema, by full and by short name (later uses refer by name)."""
    if isinstance(node, list):
        for branch in node:
            named_records(branch, out, ns)
    elif isinstance(node, dict):
        if node.get("type") == "record":
            name, here = node["name"], node.get("namespace", ns)
            full = name if "." in name or not here else f"{here}.{name}"
            out[full] = out[full.rsplit(".", 1)[-1]] = node
            for f in node["fields"]:
                named_records(f["type"], out, full.rpartition(".")[0] or None)
        elif isinstance(node.get("type"), (dict, list)):
            named_records(node["type"], out, ns)


def is_raw_envelope(schema: dict[str, Any]) -> bool:
    names = {f["name"] for f in schema.get("fields", [])}
    return {"op", "after", "source"} <= names


def row_record(schema: dict[str, Any]) -> dict[str, Any]:
    """The record schema of the row: ``after``'s record in a raw envelope, the value itself unwrapped."""
    if not is_raw_envelope(schema):
        return schema
    found: dict[str, dict[str, Any]] = {}
    named_records(schema, found)
    after = next(f["type"] for f in schema["fields"] if f["name"] == "after")
    for branch in after if isinstance(after, list) else [after]:
        if isinstance(branch, dict) and branch.get("type") == "record":
            return branch
        if isinstance(branch, str) and branch in found:
            return found[branch]
    raise SyncError(ReasonCode.NOT_A_CDC_EVENT, f"{schema.get('name')}: 'after' is not a row record")


def row_reader(table: str, schema: dict[str, Any], mappings: Callable[[str], TableMapping] = mapping_for) -> RowReader:
    """The table's mapping compiled against the row record of a value's writer schema."""
    return mappings(table).reader(row_columns(row_record(schema)))


class Normaliser:
    """``normalise`` with each writer schema's row reader compiled once (per schema id)."""

    def __init__(self, mappings: Callable[[str], TableMapping] = mapping_for) -> None:
        self._mappings = mappings
        self._readers: dict[tuple[str, int], RowReader] = {}

    def __call__(
        self, table: str, value: dict[str, Any] | None, key_id: str | None, schema_id: int, schema: dict[str, Any]
    ) -> RowChange | None:
        if value is None:
            return None
        rows = self._readers.get((table, schema_id))
        if rows is None:
            rows = self._readers[(table, schema_id)] = row_reader(table, schema, self._mappings)
        return _normalise(table, value, key_id, rows)


def normalise(table: str, value: dict[str, Any] | None, key_id: str | None, schema: dict[str, Any]) -> RowChange | None:
    """The canonical change a decoded Debezium value describes (read by its writer ``schema``);
    None for a tombstone. Compiles the row reader each call: the worker uses a ``Normaliser``."""
    if value is None:
        return None
    return _normalise(table, value, key_id, row_reader(table, schema))


def _normalise(table: str, value: dict[str, Any], key_id: str | None, rows: RowReader) -> RowChange:
    if "op" in value and "source" in value:
        return _raw(table, value, key_id, rows)
    if "__op" in value or "__deleted" in value:
        return _unwrapped(value, rows)
    raise SyncError(ReasonCode.NOT_A_CDC_EVENT, f"{table}: neither a Debezium envelope nor an unwrapped row")


def _raw(table: str, value: dict[str, Any], key_id: str | None, rows: RowReader) -> RowChange:
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
    mapped = rows.apply(row)
    return RowChange(table, op, mapped.row_id, mapped.fields, mapped.unavailable, position, snapshot)


def _unwrapped(value: dict[str, Any], rows: RowReader) -> RowChange:
    table = rows.mapping.table
    code = value.get("__op")
    deleted = str(value.get("__deleted", "false")).lower() == "true" or code == "d"
    op = Op.TRUNCATE if code == "t" else Op.DELETE if deleted else Op.UPSERT
    lsn = value.get("__source_lsn", value.get("__lsn"))
    position = Position(lsn, int(value.get("__source_ts_ms") or 0))
    if op is Op.TRUNCATE:
        return RowChange(table, op, "", {}, frozenset(), position, False)
    mapped = rows.apply(value)  # the __ fields are not columns any mapping names
    return RowChange(table, op, mapped.row_id, mapped.fields, mapped.unavailable, position, code == "r")


def key_id(key: dict[str, Any] | None) -> str | None:
    """The row id of a decoded Debezium key record (``{"id": ...}``)."""
    if isinstance(key, dict) and key.get("id") is not None:
        return str(key["id"])
    return None
