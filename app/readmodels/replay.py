"""Replay: which quarantined inputs to re-inject, with which headers, and what records close them. No I/O.

A candidate is a failed input the service kept the original bytes of: a dead-letter message (key,
value and headers are the original ones, plus the service's ``x-`` headers saying why and where
from) or an ExceptionRecord carrying ``original_value``. Selection keeps the candidates matching
every filter given, once per exception id, and skips what cannot or must not be replayed: already
resolved in the ledger, no original value, no source topic recorded, or a source topic that is gone.

A replay re-produces the original key and value to the source topic with the original headers
minus the service's own ``x-`` headers, plus ``x-replay-*`` headers linking it to the exception it
replays. Each replay is then audited (REPLAYED) and the exception resolved (REPLAYED): if the
input fails again the worker raises a *new* exception carrying ``replay_of`` / ``replay_count``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from app.domain.outputs import Output
from app.readmodels.exception_ledger import (
    avro_string_key,
    grid,
    key_label,
    operator_audit,
    resolution,
    text_of,
    to_ms,
)

# headers the service adds to a quarantined or replayed message: never carried into a replay
REASON, DETAIL = "x-reason", "x-detail"
SOURCE_TOPIC, SOURCE_PARTITION, SOURCE_OFFSET = "x-source-topic", "x-source-partition", "x-source-offset"
QUARANTINED_AT, EXCEPTION_ID = "x-quarantined-at", "x-exception-id"
REPLAY_ID, REPLAY_OF, REPLAY_COUNT = "x-replay-id", "x-replay-of", "x-replay-count"
REPLAY_OPERATOR, ORIGINAL_COORDINATES = "x-replay-operator", "x-original-coordinates"
RETRY_HEADERS = ("x-retry-attempt", "x-retry-due-ms", "x-retry-target")  # the retry tiers' own
SERVICE_HEADERS = frozenset(
    {
        *RETRY_HEADERS,
        REASON,
        DETAIL,
        SOURCE_TOPIC,
        SOURCE_PARTITION,
        SOURCE_OFFSET,
        QUARANTINED_AT,
        EXCEPTION_ID,
        REPLAY_ID,
        REPLAY_OF,
        REPLAY_COUNT,
        REPLAY_OPERATOR,
        ORIGINAL_COORDINATES,
    }
)

Headers = tuple[tuple[str, bytes | None], ...]


class Origin(StrEnum):
    DEAD_LETTER = "dead-letter"
    EXCEPTIONS = "exceptions"


class Skip(StrEnum):
    RESOLVED = "already resolved"
    NO_VALUE = "no original value"
    NO_SOURCE = "no source topic recorded"
    NO_TARGET = "source topic does not exist"


@dataclass(frozen=True, slots=True)
class Candidate:
    """A failed input whose original bytes were kept, and where it came from."""

    exception_id: str
    reason: str
    source_topic: str | None
    source_partition: int | None
    source_offset: int | None
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    at_ms: int | None = None  # x-quarantined-at / raised_at
    replay_count: int = 0  # how often this input had been replayed already
    correlation_id: str | None = None
    found_at: str = ""  # where the candidate was read: "<topic>/<partition>/<offset>"

    @property
    def coordinates(self) -> str:
        return f"{self.source_topic}/{self.source_partition}/{self.source_offset}"

    @property
    def key_text(self) -> str:
        return key_label(self.key)


def header(headers: Iterable[tuple[str, bytes | None]], name: str) -> str | None:
    """The last non-null value of header ``name`` as text (None when absent)."""
    found = None
    for k, v in headers:
        if k == name and v is not None:
            found = v.decode("utf-8", "replace")
    return found


def _int(text: Any) -> int | None:
    try:
        return None if text is None or text == "" else int(text)
    except (TypeError, ValueError):
        return None


def from_dead_letter(
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes | None]] | None,
    found_at: str,
    timestamp_ms: int | None = None,
) -> Candidate:
    """A dead-letter message as a candidate; its exception id is ``x-exception-id`` or derived as the worker does."""
    hs: Headers = tuple((k, v) for k, v in (headers or ()))
    topic, partition, offset = header(hs, SOURCE_TOPIC), header(hs, SOURCE_PARTITION), header(hs, SOURCE_OFFSET)
    # the worker's id from the coordinates; without them the dead letter is still listed, by where it sits
    known = topic and partition is not None and offset is not None
    exception_id = header(hs, EXCEPTION_ID) or (f"dlq:{topic}/{partition}/{offset}" if known else f"dlq:{found_at}")
    quarantined = header(hs, QUARANTINED_AT)
    return Candidate(
        exception_id=exception_id,
        reason=header(hs, REASON) or "",
        source_topic=topic or None,
        source_partition=_int(partition),
        source_offset=_int(offset),
        key=key,
        value=value,
        headers=hs,
        at_ms=_int(quarantined) if _int(quarantined) is not None else timestamp_ms,
        replay_count=_int(header(hs, REPLAY_COUNT)) or 0,
        found_at=found_at,
    )


def from_exception_record(record: Mapping[str, Any], found_at: str) -> Candidate:
    """A decoded ExceptionRecord (Avro dict, or its JSON form with bytes already decoded) as a candidate."""
    lineage = record.get("lineage") or {}
    headers = tuple((str(k), str(v).encode()) for k, v in (record.get("original_headers") or {}).items())
    return Candidate(
        exception_id=str(record["exception_id"]),
        reason=str(record.get("reason_code") or ""),
        source_topic=lineage.get("source_topic") or None,
        source_partition=_int(lineage.get("source_partition")),
        source_offset=_int(lineage.get("source_offset")),
        key=record.get("original_key"),
        value=record.get("original_value"),
        headers=headers,
        at_ms=to_ms(record.get("raised_at")),
        replay_count=_int(record.get("replay_count")) or 0,
        correlation_id=record.get("correlation_id"),
        found_at=found_at,
    )


@dataclass(frozen=True, slots=True)
class Criteria:
    """Filters a candidate must all pass; within one filter any listed value matches."""

    reasons: frozenset[str] = frozenset()
    keys: frozenset[str] = frozenset()
    ids: frozenset[str] = frozenset()
    since_ms: int | None = None  # inclusive
    until_ms: int | None = None  # exclusive

    def matches(self, c: Candidate) -> bool:
        if self.reasons and c.reason.upper() not in {r.upper() for r in self.reasons}:
            return False
        if self.ids and c.exception_id not in self.ids:
            return False
        if self.keys and not (key_strings(c.key) & self.keys):
            return False
        if self.since_ms is not None and (c.at_ms is None or c.at_ms < self.since_ms):
            return False
        return self.until_ms is None or (c.at_ms is not None and c.at_ms < self.until_ms)


def key_strings(key: bytes | None) -> set[str]:
    """What a ``--key`` may match: the key as UTF-8, and the id of a wire-format Avro string key."""
    out = set()
    if key is not None:
        text = text_of(key) or key.decode("utf-8", "replace")
        out.add(text)
        avro = avro_string_key(key)
        if avro is not None:
            out.add(avro)
    return out


@dataclass
class Selection:
    selected: list[Candidate] = field(default_factory=list)  # to replay, in the order read
    skipped: list[tuple[Candidate, Skip]] = field(default_factory=list)
    duplicates: int = 0  # same exception id read again (a re-sent dead letter): counted once

    def skipped_by(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for _, why in self.skipped:
            out[str(why)] = out.get(str(why), 0) + 1
        return out


def select(
    candidates: Iterable[Candidate],
    criteria: Criteria,
    resolved: Iterable[str] = (),
    existing_topics: Iterable[str] | None = None,
) -> Selection:
    """The candidates to replay and the ones skipped (with why), each exception id once (the first read).

    ``resolved``: exception ids the ledger has RESOLVED. ``existing_topics``: the cluster's topics,
    when known; a candidate whose source topic is not among them is skipped.
    """
    done = set(resolved)
    topics = None if existing_topics is None else set(existing_topics)
    seen: set[str] = set()
    out = Selection()
    for c in candidates:
        if not criteria.matches(c):
            continue
        if c.exception_id in seen:
            out.duplicates += 1
            continue
        seen.add(c.exception_id)
        why = None
        if c.exception_id in done:
            why = Skip.RESOLVED
        elif c.value is None:
            why = Skip.NO_VALUE
        elif not c.source_topic:
            why = Skip.NO_SOURCE
        elif topics is not None and c.source_topic not in topics:
            why = Skip.NO_TARGET
        if why is None:
            out.selected.append(c)
        else:
            out.skipped.append((c, why))
    return out


# --- one replay --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Injection:
    """What to produce for one candidate."""

    candidate: Candidate
    replay_id: str
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes | None]]

    @property
    def replay_count(self) -> int:
        return self.candidate.replay_count + 1


def replay_headers(c: Candidate, replay_id: str, operator: str) -> list[tuple[str, bytes | None]]:
    """The original headers minus the service's ``x-`` ones, then the replay's own.

    ``x-original-coordinates`` is where the input failed *first*: carried over when the failed input
    already had one (it was a retry or a replay itself), else the coordinates it failed at now.
    ``x-replay-count`` counts the replays of the input.
    """
    kept = [(k, v) for k, v in c.headers if k not in SERVICE_HEADERS]
    first = header(c.headers, ORIGINAL_COORDINATES) or c.coordinates
    return [
        *kept,
        (REPLAY_ID, replay_id.encode()),
        (REPLAY_OF, c.exception_id.encode()),
        (REPLAY_OPERATOR, operator.encode()),
        (REPLAY_COUNT, str(c.replay_count + 1).encode()),
        (ORIGINAL_COORDINATES, first.encode()),
    ]


def plan(c: Candidate, replay_id: str, operator: str) -> Injection:
    if c.value is None or not c.source_topic:
        raise ValueError(f"{c.exception_id} cannot be replayed: no original value or source topic")
    return Injection(c, replay_id, c.source_topic, c.key, c.value, replay_headers(c, replay_id, operator))


def closing_records(inj: Injection, operator: str, now: dt.datetime, correlation_id: str | None = None) -> list[Output]:
    """The audit record of a replay and the resolution closing the exception it replayed."""
    c = inj.candidate
    detail = (
        f"replay {inj.replay_id} of {c.exception_id} ({c.reason or 'no reason'}) to {inj.topic}; "
        f"original coordinates {c.coordinates}; replay #{inj.replay_count}"
    )
    return [
        operator_audit(
            f"audit:{c.exception_id}:replayed:{inj.replay_id}",
            "REPLAYED",
            operator,
            c.exception_id,
            now,
            correlation_id=c.correlation_id or correlation_id,
            causation_ids=[c.exception_id],
            topic=inj.topic,
            detail=detail,
        ),
        resolution(c.exception_id, operator, "REPLAYED", f"replayed as {inj.replay_id}", now),
    ]


# --- rendering ---------------------------------------------------------------------------------


def render_plan(injections: list[Injection]) -> list[str]:
    rows = [["id", "reason", "source", "key", "target", "replay #"]]
    for inj in injections:
        c = inj.candidate
        rows.append([c.exception_id, c.reason or "-", c.coordinates, c.key_text, inj.topic, str(inj.replay_count)])
    return grid(rows, right={5})


def summary(
    selection: Selection, replayed: int, failed: int = 0, limit: int | None = None, dry_run: bool = False
) -> str:
    n = len(selection.selected)
    verb = "would replay" if dry_run else "replayed"
    parts = [f"selected {n}", f"{verb} {replayed}", f"skipped {len(selection.skipped)}"]
    if failed:
        parts.append(f"failed {failed}")
    text = ", ".join(parts)
    details = [f"{why}: {k}" for why, k in sorted(selection.skipped_by().items())]
    if limit is not None and n > limit:
        details.append(f"{n - limit} left by --max {limit}")
    if selection.duplicates:
        details.append(f"{selection.duplicates} duplicate(s) counted once")
    return text + (f" ({'; '.join(details)})" if details else "")
