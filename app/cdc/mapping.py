"""Apply a declarative table mapping (``app/mappings/crm/<table>.toml``) to one CDC row.

Handles the types Debezium really emits: Connect Decimal as ``Decimal`` (logicalType present) or
raw unscaled bytes (scale from the mapping), ``io.debezium.time.MicroTimestamp`` longs,
``ZonedTimestamp`` strings, ``Date`` day counts — and the ``__debezium_unavailable_value``
placeholder of unchanged TOAST columns, which is reported as *unavailable* so the caller keeps
the previous value instead of overwriting it.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from app.domain.errors import ReasonCode, SyncError
from app.settings import get_settings

MAPPINGS_DIR = Path(__file__).resolve().parent.parent / "mappings" / "crm"
UNAVAILABLE = "__debezium_unavailable_value"
_UNAVAILABLE_BYTES = UNAVAILABLE.encode()
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_ADDRESS_PARTS = ("street", "city", "postal_code", "country")


@dataclass(frozen=True, slots=True)
class Mapped:
    row_id: str
    fields: dict[str, Any]
    unavailable: frozenset[str]


def _is_unavailable(value: Any) -> bool:
    return value in (UNAVAILABLE, _UNAVAILABLE_BYTES)


def _decimal(value: Any, scale: int) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):  # Connect Decimal without the logical type
        return Decimal(int.from_bytes(bytes(value), "big", signed=True)).scaleb(-scale)
    return Decimal(str(value))


def _time(value: Any, kind: str) -> Any:
    if kind == "micros":
        return _EPOCH + dt.timedelta(microseconds=int(value))
    if kind == "millis":
        return _EPOCH + dt.timedelta(milliseconds=int(value))
    if kind == "zoned":
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if kind == "date":
        return value if isinstance(value, dt.date) else dt.date(1970, 1, 1) + dt.timedelta(days=int(value))
    raise ValueError(f"unknown time kind {kind!r}")


class TableMapping:
    """One source table's mapping: canonical field → column rule."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.table: str = spec["table"]
        self.version: int = int(spec["version"])
        self.id_column: str = spec.get("id", "id")
        self.fields: dict[str, Any] = spec["fields"]
        self.values: dict[str, dict[str, str]] = spec.get("values", {})

    def apply(self, row: dict[str, Any]) -> Mapped:
        row_id = row.get(self.id_column)
        if row_id is None or _is_unavailable(row_id):
            raise SyncError(ReasonCode.MAPPING_ERROR, f"{self.table}: row has no {self.id_column!r}")
        out: dict[str, Any] = {}
        unavailable: set[str] = set()
        for name, rule in self.fields.items():
            try:
                value = self._field(rule, row)
            except SyncError:
                raise
            except Exception as exc:
                raise SyncError(
                    ReasonCode.MAPPING_ERROR, f"{self.table}.{name} (mapping v{self.version}): {exc!r}"
                ) from exc
            if value is _Unavailable:
                unavailable.add(name)
            else:
                out[name] = value
        return Mapped(str(row_id), out, frozenset(unavailable))

    def _field(self, rule: Any, row: dict[str, Any]) -> Any:
        if isinstance(rule, str):
            rule = {"column": rule}
        if "address" in rule:
            parts = {p: row.get(f"{rule['address']}{p}") for p in _ADDRESS_PARTS}
            if any(_is_unavailable(v) for v in parts.values()):
                return _Unavailable
            return parts if any(v is not None for v in parts.values()) else None
        value = row.get(rule["column"])
        if _is_unavailable(value):
            return _Unavailable
        if value is None:
            return rule.get("default")
        if "decimal_scale" in rule:
            return _decimal(value, int(rule["decimal_scale"]))
        if "time" in rule:
            return _time(value, rule["time"])
        if "values" in rule:
            table = self.values[rule["values"]]
            text = str(value)
            if text in table:
                return table[text]
            return text if text in table.values() else "UNKNOWN"  # already canonical, or unknown
        return value


class _UnavailableType:
    def __repr__(self) -> str:
        return "<unavailable>"


_Unavailable = _UnavailableType()


def mapping_for(table: str, directory: Path | None = None) -> TableMapping:
    """The mapping of ``table`` from ``directory`` (default: the configured ``CRM_ERP_MAPPINGS_DIR``)."""
    return _load(table, directory or get_settings().mappings_dir)


@cache
def _load(table: str, directory: Path) -> TableMapping:
    path = directory / f"{table}.toml"
    if not path.exists():
        raise SyncError(ReasonCode.MAPPING_ERROR, f"no mapping for CRM table {table!r} in {directory}")
    return TableMapping(tomllib.loads(path.read_text()))
