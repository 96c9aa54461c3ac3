"""Row changes as the domain sees them: which row, what happened, where in the source's order."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Op(StrEnum):
    UPSERT = "UPSERT"
    DELETE = "DELETE"
    TRUNCATE = "TRUNCATE"


@dataclass(frozen=True, slots=True)
class Position:
    """Where a change sits in the source's commit order: the LSN when the source gives one
    (Debezium); Salesforce's commit time, then its transaction's commit number and the change's
    sequence number in it; otherwise the source timestamp (coarser: two changes in one millisecond
    look equal)."""

    lsn: int | None
    ts_ms: int
    commit: int | None = None  # Salesforce: commitNumber (the transaction's system change number)
    seq: int | None = None  # Salesforce: sequenceNumber (the change's place in its transaction)

    def after(self, other: Position | None) -> bool:
        """True when this change is newer than ``other`` (None: nothing applied yet)."""
        if other is None:
            return True
        if self.lsn is not None and other.lsn is not None:
            return self.lsn > other.lsn
        if self.commit is not None and other.commit is not None:
            return (self.ts_ms, self.commit, self.seq or 0) > (other.ts_ms, other.commit, other.seq or 0)
        return self.ts_ms > other.ts_ms

    def label(self) -> str:
        if self.lsn is not None:
            return f"lsn:{self.lsn}"
        if self.commit is not None:
            return f"scn:{self.commit}.{self.seq or 0}"
        return f"ts:{self.ts_ms}"

    def key(self) -> tuple[int | None, int, int | None, int | None]:
        """What the internal topics carry: ``Position(*key)`` reads it back."""
        return (self.lsn, self.ts_ms, self.commit, self.seq)


@dataclass(frozen=True, slots=True)
class RowChange:
    table: str
    op: Op
    row_id: str
    fields: dict[str, Any]  # canonical fields of the row after the change (before, for deletes)
    unavailable: frozenset[str]  # fields whose value the source did not send (keep the previous one)
    position: Position
    snapshot: bool
    full: bool = True  # the whole row (Debezium; a Salesforce create); False: a partial update
    by_integration: bool = False  # made by the integration's own API client (Salesforce changeOrigin)


@dataclass(frozen=True, slots=True)
class Lineage:
    """Where a change was read: the coordinates an operator needs to find the original message."""

    topic: str
    partition: int
    offset: int
    schema_id: int | None
    source_ts_ms: int | None

    @property
    def source_ts_iso(self) -> str | None:
        """The source commit time as an ISO instant (None when the source gave none)."""
        if self.source_ts_ms is None:
            return None
        return dt.datetime.fromtimestamp(self.source_ts_ms / 1000, dt.UTC).isoformat()

    def record(self, source_position: str | None) -> dict:
        """The ``io.crmerpsync.sync.Lineage`` record of this origin (JSON-mode values)."""
        return {
            "source_topic": self.topic,
            "source_partition": self.partition,
            "source_offset": self.offset,
            "schema_id": self.schema_id,
            "source_position": source_position,
            "source_ts": self.source_ts_iso,
        }

    @property
    def coordinates(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


def keep(fields: dict[str, Any], unavailable: frozenset[str], previous: dict[str, Any] | None) -> dict[str, Any]:
    """``fields`` with each unavailable field (or address part, ``bill_to.city``) taken from ``previous``."""
    if not unavailable or previous is None:
        return fields
    out = dict(fields)
    for name in unavailable:
        field, _, part = name.partition(".")
        if not part:
            if field in previous:
                out[field] = previous[field]
        elif isinstance(out.get(field), dict):
            before = previous.get(field) or {}
            out[field] = {**out[field], part: before.get(part)}
    return out
