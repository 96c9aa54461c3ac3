"""What a keyed step returns: table writes and outputs, applied and sent by whoever runs it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from app.domain.outputs import Output

Tables = Mapping[str, MutableMapping[bytes, Any]]  # table name -> its rows (bytes keys and values)
# A flow's outbox rows live in its own table beside its state, under keys with this prefix (no key
# of the service starts with a control character); readers of a table skip them (``rows``).
OUTBOX_PREFIX = b"\x1f"


def rows(items: Iterable[tuple[bytes, Any]]) -> Iterator[tuple[bytes, Any]]:
    """A table's rows without its outbox rows."""
    return ((k, v) for k, v in items if not k.startswith(OUTBOX_PREFIX))


@dataclass(frozen=True, slots=True)
class Message:
    """A record ready for the broker (already encoded), e.g. a re-keyed change on an internal topic."""

    topic: str  # catalog name
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    partition: int | None = None  # None: by key


@dataclass(frozen=True, slots=True)
class Write:
    table: str
    key: bytes
    value: bytes | None  # None: delete the row


@dataclass(slots=True)
class Step:
    writes: list[Write] = field(default_factory=list)
    outputs: list[Output | Message] = field(default_factory=list)
    info: Any = None  # what the agent reports about the step (metrics, logs); not stored


def put(tables: Tables, table: str, key: bytes, value: bytes | None) -> list[Write]:
    """A write of ``value`` unless the row already holds it (no changelog record for nothing)."""
    current = tables[table].get(key)
    return [] if current == value else [Write(table, key, value)]
