"""Declarative table mappings (``app/mappings/crm/<table>.toml``) applied to CDC rows.

A mapping names, per canonical field, a source column and what the field needs it to be
(``as = "decimal"``); it never names an encoding. ``TableMapping.reader`` compiles the mapping
against one writer schema's row record into a ``RowReader``: per field, the column's reader for
that writer (app/cdc/columns.py), or the problems that make the schema unreadable. Readers are
compiled once per writer schema, so a row costs one dict lookup and one call per field.

Debezium's ``__debezium_unavailable_value`` placeholder of an unchanged TOAST column is reported
as *unavailable*, so the caller keeps the previous value instead of overwriting it
(``app.domain.changes.keep``); the
Salesforce adapter marks the fields a partial update did not send the same way. An address with
only some parts unavailable reports those as ``<field>.<part>``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from app.cdc.columns import Meaning, Reader, Unreadable, WriterColumn, reader
from app.domain.errors import ReasonCode, SyncError
from app.settings import get_settings

MAPPINGS_DIR = Path(__file__).resolve().parent.parent / "mappings" / "crm"
UNAVAILABLE = "__debezium_unavailable_value"
_UNAVAILABLE_BYTES = UNAVAILABLE.encode()
ADDRESS_PARTS = ("street", "city", "postal_code", "country")


@dataclass(frozen=True, slots=True)
class Mapped:
    row_id: str
    fields: dict[str, Any]
    unavailable: frozenset[str]


def _is_unavailable(value: Any) -> bool:
    return value in (UNAVAILABLE, _UNAVAILABLE_BYTES)


class _UnavailableType:
    def __repr__(self) -> str:
        return "<unavailable>"


_Unavailable = _UnavailableType()


@dataclass(frozen=True, slots=True)
class FieldRule:
    """One canonical field: its column(s), the meaning it needs, and what null becomes."""

    name: str
    columns: tuple[str, ...]  # one column, or an address's four
    meaning: Meaning
    default: Any = None
    values: dict[str, str] | None = None  # label → canonical value
    optional: bool = False  # a writer schema without the column is readable (the field reads as null)
    address: bool = False

    @classmethod
    def parse(cls, name: str, rule: Any, tables: dict[str, dict[str, str]]) -> FieldRule:
        if isinstance(rule, str):
            rule = {"column": rule}
        if "address" in rule:  # a prefix, and the four parts' column suffixes in ADDRESS_PARTS' order
            parts = rule.get("parts", ADDRESS_PARTS)
            if len(parts) != len(ADDRESS_PARTS):
                raise ValueError(f"{name}: an address names {len(ADDRESS_PARTS)} parts ({', '.join(ADDRESS_PARTS)})")
            cols = tuple(f"{rule['address']}{p}" for p in parts)
            return cls(name, cols, Meaning.TEXT, optional=bool(rule.get("optional")), address=True)
        values = tables[rule["values"]] if "values" in rule else None
        meaning = Meaning(rule.get("as", "text"))
        return cls(name, (rule["column"],), meaning, rule.get("default"), values, bool(rule.get("optional")))


Step = Callable[[dict[str, Any]], Any]


class TableMapping:
    """One source table's mapping: canonical field → column rule."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.table: str = spec["table"]
        self.entity: str | None = spec.get("entity")  # the Salesforce object a Salesforce mapping reads
        self.version: int = int(spec["version"])
        self.id_column: str = spec.get("id", "id")
        tables: dict[str, dict[str, str]] = spec.get("values", {})
        self.rules = tuple(FieldRule.parse(name, rule, tables) for name, rule in spec["fields"].items())

    def needs(self) -> dict[str, FieldRule]:
        """Every column the mapping reads, with the rule that reads it (the id column as text)."""
        out = {self.id_column: FieldRule("(row id)", (self.id_column,), Meaning.TEXT)}
        for rule in self.rules:
            out |= dict.fromkeys(rule.columns, rule)
        return out

    def reader(self, columns: dict[str, WriterColumn]) -> RowReader:
        """This mapping compiled against a writer schema's columns."""
        problems: list[str] = []
        steps: list[tuple[str, Step]] = []
        id_col = columns.get(self.id_column)
        if id_col is None:
            problems.append(f"column {self.id_column!r} (the row id) is missing")
        else:
            try:
                reader(id_col, Meaning.TEXT)
            except Unreadable as exc:
                problems.append(str(exc))
        for rule in self.rules:
            present = [c for c in rule.columns if c in columns]
            if len(present) < len(rule.columns) and not rule.optional:
                missing = ", ".join(repr(c) for c in rule.columns if c not in columns)
                problems.append(f"column {missing} for {rule.name} is missing")
                continue
            try:
                steps.append((rule.name, self._step(rule, columns)))
            except Unreadable as exc:
                problems.append(f"{exc} (needed for {rule.name})")
        return RowReader(self, tuple(problems), tuple(steps))

    @staticmethod
    def _step(rule: FieldRule, columns: dict[str, WriterColumn]) -> Step:
        if rule.address:
            parts = list(zip(ADDRESS_PARTS, rule.columns, strict=True))
            for col in rule.columns:
                if col in columns:
                    reader(columns[col], Meaning.TEXT)

            def address(row: dict[str, Any]) -> Any:
                values = {p: row.get(col) for p, col in parts}
                missing = [p for p, v in values.items() if _is_unavailable(v)]
                if len(missing) == len(values):
                    return _Unavailable
                if missing:  # some parts sent, some not: the caller keeps the previous value of those
                    return {p: _Unavailable if p in missing else v for p, v in values.items()}
                return values if any(v is not None for v in values.values()) else None

            return address
        column = rule.columns[0]
        if column not in columns:  # optional and absent in this writer schema
            return lambda row: rule.default
        read: Reader | None = reader(columns[column], rule.meaning)
        default, values = rule.default, rule.values

        def field(row: dict[str, Any]) -> Any:
            value = row.get(column)
            if value is None:
                return default
            if _is_unavailable(value):
                return _Unavailable
            if read is not None:
                value = read(value)
            if values is not None:
                text = str(value)
                if text in values:
                    return values[text]
                return text if text in values.values() else "UNKNOWN"  # already canonical, or unknown
            return value

        return field


@dataclass(frozen=True, slots=True)
class RowReader:
    """A mapping compiled for one writer schema; ``problems`` non-empty means it cannot read it."""

    mapping: TableMapping
    problems: tuple[str, ...]
    steps: tuple[tuple[str, Step], ...]

    def apply(self, row: dict[str, Any]) -> Mapped:
        m = self.mapping
        if self.problems:
            raise SyncError(
                ReasonCode.SCHEMA_MISMATCH,
                f"{m.table} (mapping v{m.version}) cannot read this writer schema: {'; '.join(self.problems)}",
            )
        row_id = row.get(m.id_column)
        if row_id is None or _is_unavailable(row_id):
            raise SyncError(ReasonCode.MAPPING_ERROR, f"{m.table}: row has no {m.id_column!r}")
        out: dict[str, Any] = {}
        unavailable: set[str] = set()
        for name, step in self.steps:
            try:
                value = step(row)
            except Exception as exc:
                raise SyncError(ReasonCode.MAPPING_ERROR, f"{m.table}.{name} (mapping v{m.version}): {exc!r}") from exc
            if value is _Unavailable:
                unavailable.add(name)
            elif isinstance(value, dict) and _Unavailable in value.values():  # an address sent in part
                unavailable.update(f"{name}.{p}" for p, v in value.items() if v is _Unavailable)
                out[name] = {p: v for p, v in value.items() if v is not _Unavailable}
            else:
                out[name] = value
        return Mapped(str(row_id), out, frozenset(unavailable))


def mapping_for(table: str, directory: Path | None = None) -> TableMapping:
    """The mapping of ``table`` from ``directory`` (default: the configured ``CRM_ERP_MAPPINGS_DIR``)."""
    return _load(table, directory or get_settings().mappings_dir)


@cache
def _load(table: str, directory: Path) -> TableMapping:
    path = directory / f"{table}.toml"
    if not path.exists():
        raise SyncError(ReasonCode.MAPPING_ERROR, f"no mapping for CRM table {table!r} in {directory}")
    return TableMapping(tomllib.loads(path.read_text()))
