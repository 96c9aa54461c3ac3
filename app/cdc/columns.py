"""A source column's values, read by what its writer schema says they are.

A mapping names a column and the meaning it needs (``as = "timestamp"``); the writer schema of each
record says how the producer encoded that column. Debezium's encoding of one PostgreSQL type
changes with the connector's ``time.precision.mode`` and ``decimal.handling.mode`` (a
``timestamptz`` is an ISO string, a ``timestamp`` a long of micro- or milliseconds, a ``numeric``
bytes with a scale, a double, a string or a variable-scale record), so the reader of a column is
chosen once per writer schema from its Connect semantic name or Avro logical type, never fixed per
column. A column whose encoding cannot become the meaning asked for is a ``Problem``, found from
the schema alone, before any row is read.

Debezium's semantics, as its PostgreSQL connector documents them: ``Date`` days since the epoch;
``Time``/``MicroTime``/``NanoTime`` milli-/micro-/nanoseconds past midnight; ``Timestamp``/
``MicroTimestamp``/``NanoTimestamp`` milli-/micro-/nanoseconds since the epoch of a wall-clock time
without zone (read as UTC, as Debezium writes it); ``ZonedTimestamp``/``ZonedTime`` ISO-8601
strings with an offset; Connect ``Decimal`` big-endian two's-complement bytes with the scale in
``connect.parameters``; ``VariableScaleDecimal`` a record of ``scale`` and such bytes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from app.domain.errors import ServiceError

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_DATE = dt.date(1970, 1, 1)
_MIDNIGHT = dt.datetime(1970, 1, 1)

Reader = Callable[[Any], Any]


class Meaning(StrEnum):
    """What a mapping needs a column to become (``as = "..."`` in ``app/mappings/``)."""

    TEXT = "text"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    DECIMAL = "decimal"
    DATE = "date"
    TIME = "time"
    TIMESTAMP = "timestamp"


@dataclass(frozen=True, slots=True)
class WriterColumn:
    """One column of a writer schema's row record: its Avro type and semantic name."""

    name: str
    avro: str  # the Avro type without the null branch: "string", "long", "bytes", "record", …
    semantic: str | None  # Connect/Debezium name (connect.name) or else the Avro logicalType
    scale: int | None
    nullable: bool

    def describe(self) -> str:
        return f"{self.avro} ({self.semantic})" if self.semantic else self.avro


class Unreadable(ServiceError):
    """The writer's encoding of a column cannot become the meaning a mapping needs."""


def writer_column(name: str, avro_type: Any) -> WriterColumn:
    """Describe a row-record field from its (parsed) Avro type."""
    branches = avro_type if isinstance(avro_type, list) else [avro_type]
    nullable = "null" in branches
    others = [b for b in branches if b != "null"]
    if len(others) != 1:
        return WriterColumn(name, "union", None, None, nullable)
    t = others[0]
    if not isinstance(t, dict):
        return WriterColumn(name, str(t), None, None, nullable)
    kind = t.get("type")
    if isinstance(kind, dict):  # {"type": {"type": "long", "logicalType": ...}}
        return writer_column(name, [*(["null"] if nullable else []), kind])
    semantic = t.get("connect.name") or t.get("logicalType")
    scale = t.get("scale")
    if scale is None and isinstance(t.get("connect.parameters"), dict):
        scale = t["connect.parameters"].get("scale")
    return WriterColumn(name, str(kind), semantic, int(scale) if scale is not None else None, nullable)


def row_columns(record: dict[str, Any]) -> dict[str, WriterColumn]:
    """The columns of a row record schema, by name."""
    return {f["name"]: writer_column(f["name"], f["type"]) for f in record["fields"]}


# --- the readers ----------------------------------------------------------------------------


def _days(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else _EPOCH_DATE + dt.timedelta(days=int(value))


def _since_epoch(unit_us: float) -> Reader:
    def read(value: Any) -> dt.datetime:
        if isinstance(value, dt.datetime):  # fastavro already applied a timestamp-* logical type
            return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return _EPOCH + dt.timedelta(microseconds=int(value) * unit_us)

    return read


def _past_midnight(unit_us: float) -> Reader:
    def read(value: Any) -> dt.time:
        if isinstance(value, dt.time):  # fastavro already applied a time-* logical type
            return value
        return (_MIDNIGHT + dt.timedelta(microseconds=int(value) * unit_us)).time()

    return read


def _iso_instant(value: Any) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _iso_time(value: Any) -> dt.time:
    return dt.time.fromisoformat(str(value))


def _iso_date(value: Any) -> dt.date:
    return dt.date.fromisoformat(str(value))


# 38 digits (the most any ERP amount or quantity holds) fit in 16 bytes. Turning longer bytes into a
# number costs time quadratic in their length (a 1 MB amount: ~100 s), so they are refused first.
DECIMAL_MAX_BYTES = 16
DECIMAL_MAX_CHARS = 64


def _unscaled_bytes(raw: Any) -> int:
    data = bytes(raw)
    if len(data) > DECIMAL_MAX_BYTES:
        raise ValueError(f"a decimal of {len(data)} bytes has more than 38 digits")
    return int.from_bytes(data, "big", signed=True)


def _unscaled(scale: int) -> Reader:
    def read(value: Any) -> Decimal:
        if isinstance(value, Decimal):  # fastavro already applied the decimal logical type
            return value
        return Decimal(_unscaled_bytes(value)).scaleb(-scale)

    return read


def _variable_scale(value: Any) -> Decimal:
    return Decimal(_unscaled_bytes(value["value"])).scaleb(-int(value["scale"]))


def _decimal_text(value: Any) -> Decimal:
    text = str(value)  # str() of a double is its shortest repr: 1234.56, not 1234.5599999…
    if len(text) > DECIMAL_MAX_CHARS:
        raise ValueError(f"a decimal of {len(text)} characters has more than 38 digits")
    return Decimal(text)


_TIMESTAMPS: dict[str, Reader] = {
    "io.debezium.time.Timestamp": _since_epoch(1_000),
    "io.debezium.time.MicroTimestamp": _since_epoch(1),
    "io.debezium.time.NanoTimestamp": _since_epoch(0.001),
    "org.apache.kafka.connect.data.Timestamp": _since_epoch(1_000),
    "timestamp-millis": _since_epoch(1_000),
    "timestamp-micros": _since_epoch(1),
    "local-timestamp-millis": _since_epoch(1_000),
    "local-timestamp-micros": _since_epoch(1),
    "io.debezium.time.ZonedTimestamp": _iso_instant,
}
_TIMES: dict[str, Reader] = {
    "io.debezium.time.Time": _past_midnight(1_000),
    "io.debezium.time.MicroTime": _past_midnight(1),
    "io.debezium.time.NanoTime": _past_midnight(0.001),
    "org.apache.kafka.connect.data.Time": _past_midnight(1_000),
    "time-millis": _past_midnight(1_000),
    "time-micros": _past_midnight(1),
    "io.debezium.time.ZonedTime": _iso_time,
}
_DATES = frozenset({"io.debezium.time.Date", "org.apache.kafka.connect.data.Date", "date"})
_DECIMALS = frozenset({"org.apache.kafka.connect.data.Decimal", "decimal"})
_NUMBERS = frozenset({"int", "long", "float", "double"})


def _timestamp(c: WriterColumn) -> Reader | bool | None:
    if c.semantic in _TIMESTAMPS:
        return _TIMESTAMPS[c.semantic]
    return _iso_instant if c.avro == "string" and c.semantic is None else False


def _date(c: WriterColumn) -> Reader | bool | None:
    if c.semantic in _DATES:
        return _days
    return _iso_date if c.avro == "string" and c.semantic is None else False


def _time(c: WriterColumn) -> Reader | bool | None:
    if c.semantic in _TIMES:
        return _TIMES[c.semantic]
    return _iso_time if c.avro == "string" and c.semantic is None else False


def _decimal(c: WriterColumn) -> Reader | bool | None:
    if c.semantic in _DECIMALS and c.avro in ("bytes", "fixed"):
        if c.scale is None:
            raise Unreadable(f"column {c.name!r}: {c.describe()} carries no scale")
        return _unscaled(c.scale)
    if c.semantic == "io.debezium.data.VariableScaleDecimal":
        return _variable_scale
    if c.semantic is None and (c.avro in _NUMBERS or c.avro == "string"):
        return _decimal_text  # decimal.handling.mode double or string
    return False


def _whole(value: Any) -> int:
    if value != int(value):
        raise ValueError(f"{value!r} is not a whole number")
    return int(value)


def _integer(c: WriterColumn) -> Reader | bool | None:
    if c.semantic is None and c.avro in ("float", "double"):
        return _whole  # Salesforce number fields are doubles, whole ones included
    return None if c.avro in ("int", "long") and c.semantic is None else False


def _boolean(c: WriterColumn) -> Reader | bool | None:
    return None if c.avro == "boolean" else False


def _text(c: WriterColumn) -> Reader | bool | None:
    if c.avro == "string":  # Debezium's Enum, Json, Uuid… are strings too
        return None
    return str if c.avro in ("int", "long") and c.semantic is None else False  # integer ids keep their digits


# per meaning: the reader of a writer column, None when its values need no conversion, False when none fits
_RULES: dict[Meaning, Callable[[WriterColumn], Reader | bool | None]] = {
    Meaning.TIMESTAMP: _timestamp,
    Meaning.DATE: _date,
    Meaning.TIME: _time,
    Meaning.DECIMAL: _decimal,
    Meaning.INTEGER: _integer,
    Meaning.BOOLEAN: _boolean,
    Meaning.TEXT: _text,
}


def reader(column: WriterColumn, meaning: Meaning) -> Reader | None:
    """How to turn the writer's values of ``column`` into ``meaning``: None when they are already it.

    Raises ``Unreadable`` with a sentence naming both sides when no rule applies.
    """
    found = _RULES[meaning](column)
    if found is False:
        raise Unreadable(f"column {column.name!r}: writer type {column.describe()} cannot become {meaning.value}")
    return found  # type: ignore[return-value]
