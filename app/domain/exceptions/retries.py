"""Where a failed message goes next, and the context it carries there: headers and exception records.

Header conventions (all values UTF-8):

* retry: ``x-retry-attempt`` (tiers used so far), ``x-retry-due-ms`` (when the tier sends it back),
  ``x-retry-target`` (the topic it returns to);
* quarantine: ``x-reason``, ``x-detail``, ``x-source-topic``/``-partition``/``-offset``,
  ``x-quarantined-at`` (epoch ms), ``x-exception-id``, and ``x-original-coordinates`` (where it
  failed first, kept across retries and replays); ``x-payload-dropped`` (its size in bytes) when the
  message was too large to copy, so only its coordinates point at it;
* replay (set by ``crm-erp-sync replay``): ``x-replay-id``, ``x-replay-of``, ``x-replay-count``,
  ``x-replay-operator``.

Whoever can write a source topic can put any header on it, so none of these is trusted: numbers are
parsed defensively (``header_int``), the topic a retry returns to is the one the message failed in
(never an incoming ``x-retry-target``), and the retry agents send only to topics this worker
consumes (``retry_target``).

No Faust, no I/O.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from app.domain.errors import ReasonCode, SyncError
from app.domain.exceptions.taxonomy import classify
from app.domain.masking import mask_text

Headers = list[tuple[str, bytes]]
_QUARANTINE = ("x-reason", "x-detail", "x-source-topic", "x-source-partition", "x-source-offset")
SERVICE_HEADERS = frozenset(
    {
        *_QUARANTINE,
        "x-quarantined-at",
        "x-exception-id",
        "x-retry-attempt",
        "x-retry-due-ms",
        "x-retry-target",
        "x-retry-target-catalog",
    }
)


@dataclass(frozen=True, slots=True)
class Coordinates:
    topic: str
    partition: int
    offset: int

    @property
    def label(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


def parse_tiers(spec: str) -> list[tuple[str, float]]:
    """``"10s=10,1m=60"`` -> ``[("10s", 10.0), ("1m", 60.0)]`` (tier topic suffix, delay in seconds)."""
    tiers = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, seconds = part.partition("=")
        if not name or not seconds or float(seconds) < 0:
            raise ValueError(f"retry tier {part!r}: expected <topic suffix>=<seconds>")
        tiers.append((name.strip(), float(seconds)))
    return tiers


def header(headers: Headers, name: str) -> str | None:
    for key, value in reversed(headers):
        if key == name and value is not None:
            return value.decode("utf-8", errors="replace")
    return None


def header_int(headers: Headers, name: str) -> int | None:
    """A numeric header, or None when it is absent or not a non-negative integer (it may be forged)."""
    text = header(headers, name)
    if text is None or not text.strip().isdigit() or len(text.strip()) > 18:
        return None
    return int(text)


def _without(headers: Headers, names: frozenset[str] | tuple[str, ...]) -> Headers:
    return [(k, v) for k, v in headers if k not in names]


def next_step(headers: Headers, tiers: list[tuple[str, float]], topic: str, now_s: float) -> tuple[str, Headers] | None:
    """The next tier and the headers the message travels with; None once every tier was tried.

    ``topic`` is where the message failed: it returns there and nowhere else."""
    attempt = header_int(headers, "x-retry-attempt") or 0
    if attempt >= len(tiers):
        return None
    tier, delay = tiers[attempt]
    kept = _without(headers, SERVICE_HEADERS)
    return tier, [
        *kept,
        ("x-retry-attempt", str(attempt + 1).encode()),
        ("x-retry-due-ms", str(int((now_s + delay) * 1000)).encode()),
        ("x-retry-target", topic.encode()),
    ]


def retry_target(headers: Headers, consumed: frozenset[str], resendable: dict[str, str]) -> str:
    """The full topic name a retry tier sends a due message to: ``x-retry-target`` when it is a
    topic this worker consumes, else ``x-retry-target-catalog`` when it names a topic the domain
    re-sends through the tiers (``resendable``: catalog name → full name). Anything else is a
    header the service did not write: BAD_CONTROL_HEADER."""
    target = header(headers, "x-retry-target")
    if target is not None:
        if target in consumed:
            return target
        raise SyncError(
            ReasonCode.BAD_CONTROL_HEADER, f"x-retry-target {target[:200]!r} is not a topic this worker reads"
        )
    catalog = header(headers, "x-retry-target-catalog")
    if catalog is not None and catalog in resendable:
        return resendable[catalog]
    raise SyncError(ReasonCode.BAD_CONTROL_HEADER, f"no usable retry target (x-retry-target-catalog {catalog!r})")


def reason_headers(coords: Coordinates, reason: str, detail: str) -> Headers:
    return [
        ("x-reason", str(reason).encode()),
        ("x-detail", mask_text(detail)[:2000].encode(errors="replace")),
        ("x-source-topic", coords.topic.encode()),
        ("x-source-partition", str(coords.partition).encode()),
        ("x-source-offset", str(coords.offset).encode()),
    ]


def dead_letter_headers(
    headers: Headers, coords: Coordinates, reason: str, detail: str, exception_id: str, now: dt.datetime
) -> Headers:
    kept = _without(headers, SERVICE_HEADERS)
    first = header(headers, "x-original-coordinates")
    out = [*kept, *reason_headers(coords, reason, detail)]
    out += [
        ("x-quarantined-at", str(int(now.timestamp() * 1000)).encode()),
        ("x-exception-id", exception_id.encode()),
    ]
    if first is None:
        out.append(("x-original-coordinates", coords.label.encode()))
    return out


# what a copy adds besides the original's key, value and headers: the service's own headers, the
# exception record's other fields (detail ≤ 2 000 characters, lineage, ids)
RECORD_OVERHEAD = 8 * 1024


@dataclass(frozen=True, slots=True)
class Copy:
    """What the copies of a message (dead letter, exception record, its ledger row, a retry tier) may
    carry, and what had to stay behind at the source coordinates."""

    key: bytes | None
    value: bytes | None
    headers: Headers
    dropped_bytes: int | None  # key/value bytes left at the source (None: all copied)
    dropped_header_bytes: int | None  # original header bytes left at the source (None: all copied)


def headers_size(headers: Headers) -> int:
    return sum(len(k.encode()) + len(v or b"") for k, v in headers)


def copy_plan(key: bytes | None, value: bytes | None, headers: Headers, limit: int) -> Copy:
    """Size every derived record before it is sent, so none can be refused for its size.

    The largest copy is the exception ledger's row: key and value base64-encoded (4/3 of their size), the
    original headers, and the record's own fields. A message the broker accepted can still be too
    large for that: its headers go first (beyond an eighth of the limit), then its value (and a huge
    key), which stay only at their source coordinates."""
    kept, dropped_headers = headers, None
    if headers_size(headers) > limit // 8:
        kept, dropped_headers = [], headers_size(headers)
    budget = max(0, (limit - headers_size(kept) - RECORD_OVERHEAD) * 3 // 4)
    size = len(key or b"") + len(value or b"")
    if size <= budget:
        return Copy(key, value, kept, None, dropped_headers)
    return Copy(key if len(key or b"") <= budget // 4 else None, None, kept, size, dropped_headers)


def exception_record(
    coords: Coordinates,
    reason: str,
    detail: str,
    key: bytes | None,
    value: bytes | None,
    headers: Headers,
    correlation_id: str | None,
    now: dt.datetime,
) -> dict[str, Any]:
    """The ``ExceptionRecord`` (JSON-mode values) of a quarantined message, original bytes included."""
    c = classify(ReasonCode(reason))
    replay_count = header_int(headers, "x-replay-count") or 0
    return {
        "exception_id": f"dlq:{coords.label}",
        "reason_code": str(reason),
        "exception_type": str(c.type),
        "severity": str(c.severity),
        "correlation_id": correlation_id,
        "amount_at_risk": None,
        "currency": None,
        "customer_facing": c.customer_facing,
        "owner_team": c.owner_team,
        "sla_minutes": c.sla_minutes,
        "detail": mask_text(detail)[:2000],
        "lineage": {
            "source_topic": coords.topic,
            "source_partition": coords.partition,
            "source_offset": coords.offset,
            "schema_id": None,
            "source_position": None,
            "source_ts": None,
        },
        "original_key": key,
        "original_value": value,
        "original_headers": {k: (v or b"").decode("utf-8", errors="replace") for k, v in headers},
        "raised_at": now.isoformat(),
        "replay_of": header(headers, "x-replay-of"),
        "replay_count": replay_count,
        "status": "DEAD_LETTERED",
    }
