"""The exception ledger read as data: rows parsed, filtered, rendered, and closed by an operator. No I/O.

The worker keeps one row per exception in the Faust table ``exception-ledger`` (changelog
``<app_id>-exception-ledger-changelog``), keyed by exception id (UTF-8), valued by JSON::

    {"exception": <ExceptionRecord as JSON>, "status": "OPEN|PARKED|RETRYING|DEAD_LETTERED|RESOLVED",
     "resolution": null | {"resolved_at", "resolved_by", "resolution", "note"},
     "escalation": null | {"escalation_id", "route_team", "channel", "mode", "escalated_at"},
     "updated_at": "<ISO-8601>"}

In the ExceptionRecord JSON decimals are strings, timestamps ISO-8601 and the original key/value
base64 strings under their own field names. Parsing is lenient about what it does not need (an
epoch-ms number is accepted where ISO is expected) and strict about what it does: the id.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from app.domain.errors import ServiceError
from app.domain.masking import mask_text
from app.domain.outputs import AuditRecord, ExceptionResolved, Output

TABLE = "exception-ledger"
RESOLUTIONS_TOPIC = "sync.exception-resolutions"


def changelog_topic(app_id: str) -> str:
    return f"{app_id}-{TABLE}-changelog"


class Status(StrEnum):
    OPEN = "OPEN"
    PARKED = "PARKED"
    RETRYING = "RETRYING"
    DEAD_LETTERED = "DEAD_LETTERED"
    RESOLVED = "RESOLVED"


class LedgerError(ServiceError, ValueError):
    """A ledger value that is not a ledger row."""


class Refused(ServiceError):
    """An operator action the ledger does not allow; the message says why."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One ledger row: the exception, its handling status, and how it was resolved or escalated."""

    exception_id: str
    status: str
    reason_code: str = ""
    exception_type: str = ""
    severity: str = ""
    correlation_id: str | None = None
    amount_at_risk: Decimal | None = None
    currency: str | None = None
    customer_facing: bool = False
    owner_team: str = ""
    sla_minutes: int | None = None
    detail: str = ""
    lineage: dict[str, Any] = field(default_factory=dict)
    original_key: bytes | None = None
    original_value: bytes | None = None
    original_headers: dict[str, str] = field(default_factory=dict)
    raised_at_ms: int | None = None
    replay_of: str | None = None
    replay_count: int = 0
    resolution: dict[str, Any] | None = None
    escalation: dict[str, Any] | None = None
    updated_at: str | None = None

    @property
    def resolved(self) -> bool:
        return self.status == Status.RESOLVED

    @property
    def escalated(self) -> bool:
        return self.escalation is not None

    @property
    def coordinates(self) -> str | None:
        lin = self.lineage
        if not lin.get("source_topic"):
            return None
        return f"{lin['source_topic']}/{lin.get('source_partition')}/{lin.get('source_offset')}"

    def age_ms(self, now_ms: int) -> int | None:
        return None if self.raised_at_ms is None else max(0, now_ms - self.raised_at_ms)

    def to_json(self, now_ms: int, raw: bool = False) -> dict[str, Any]:
        """The entry for ``--json``; the original value is withheld (null) and the key and headers
        masked unless ``raw``: a payload may hold personal data."""
        age = self.age_ms(now_ms)
        return {
            "exception_id": self.exception_id,
            "status": self.status,
            "reason_code": self.reason_code,
            "exception_type": self.exception_type,
            "severity": self.severity,
            "correlation_id": self.correlation_id,
            "amount_at_risk": None if self.amount_at_risk is None else str(self.amount_at_risk),
            "currency": self.currency,
            "customer_facing": self.customer_facing,
            "owner_team": self.owner_team,
            "sla_minutes": self.sla_minutes,
            "detail": self.detail,
            "lineage": self.lineage,
            "original_key": _b64(self.original_key) if raw else _masked_key(self.original_key),
            "original_value": _b64(self.original_value) if raw else None,
            "original_value_bytes": None if self.original_value is None else len(self.original_value),
            "original_headers": self.original_headers if raw else _masked_headers(self.original_headers),
            "raised_at": iso(self.raised_at_ms),
            "age_seconds": None if age is None else age // 1000,
            "replay_of": self.replay_of,
            "replay_count": self.replay_count,
            "escalated": self.escalated,
            "resolution": self.resolution,
            "escalation": self.escalation,
            "updated_at": self.updated_at,
        }


# --- parsing ---------------------------------------------------------------------------------


def parse_entry(key: bytes | None, value: bytes) -> Entry:
    """One changelog value as an Entry; LedgerError when it is not a ledger row."""
    try:
        row = json.loads(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise LedgerError(f"not JSON: {exc}") from exc
    if not isinstance(row, dict) or not isinstance(row.get("exception") or {}, dict):
        raise LedgerError("not a ledger row")
    # the exception is null while only its resolution has arrived (they travel on different topics)
    exc_json: dict[str, Any] = row.get("exception") or {}
    res = row.get("resolution") if isinstance(row.get("resolution"), dict) else {}
    exception_id = (
        exc_json.get("exception_id") or res.get("exception_id") or (key.decode("utf-8", "replace") if key else None)
    )
    if not exception_id:
        raise LedgerError("no exception id")
    status = row.get("status") or exc_json.get("status") or Status.OPEN
    headers = exc_json.get("original_headers") or {}
    try:
        return Entry(
            exception_id=str(exception_id),
            status=str(status).upper(),
            reason_code=str(exc_json.get("reason_code") or ""),
            exception_type=str(exc_json.get("exception_type") or ""),
            severity=str(exc_json.get("severity") or ""),
            correlation_id=exc_json.get("correlation_id"),
            amount_at_risk=_decimal(exc_json.get("amount_at_risk")),
            currency=exc_json.get("currency"),
            customer_facing=bool(exc_json.get("customer_facing", False)),
            owner_team=str(exc_json.get("owner_team") or ""),
            sla_minutes=_int(exc_json.get("sla_minutes")),
            detail=str(exc_json.get("detail") or ""),
            lineage=dict(exc_json.get("lineage") or {}),
            original_key=unb64(exc_json.get("original_key")),
            original_value=unb64(exc_json.get("original_value")),
            original_headers={str(k): str(v) for k, v in dict(headers).items()},
            raised_at_ms=to_ms(exc_json.get("raised_at")),
            replay_of=exc_json.get("replay_of"),
            replay_count=_int(exc_json.get("replay_count")) or 0,
            resolution=row.get("resolution") if isinstance(row.get("resolution"), dict) else None,
            escalation=row.get("escalation") if isinstance(row.get("escalation"), dict) else None,
            updated_at=row.get("updated_at"),
        )
    except (TypeError, ValueError) as exc:
        raise LedgerError(f"{exception_id}: {exc}") from exc


def parse_ledger(values: Mapping[bytes, bytes]) -> tuple[dict[str, Entry], int]:
    """Every row of the changelog's last values by exception id, and how many did not parse."""
    entries: dict[str, Entry] = {}
    bad = 0
    for key, value in values.items():
        try:
            entry = parse_entry(key, value)
        except LedgerError:
            bad += 1
            continue
        entries[entry.exception_id] = entry
    return entries, bad


def select(
    entries: Iterable[Entry],
    reason: str | None = None,
    severity: str | None = None,
    since_ms: int | None = None,
    open_only: bool = False,
) -> list[Entry]:
    """The entries matching every filter given, oldest first (undated last), ties by id.

    ``open_only`` keeps everything not RESOLVED (parked, retrying and dead-lettered ones need an eye too).
    """
    out = [
        e
        for e in entries
        if (reason is None or e.reason_code.upper() == reason.upper())
        and (severity is None or e.severity.upper() == severity.upper())
        and (since_ms is None or (e.raised_at_ms is not None and e.raised_at_ms >= since_ms))
        and not (open_only and e.resolved)
    ]
    out.sort(key=lambda e: (e.raised_at_ms is None, e.raised_at_ms or 0, e.exception_id))
    return out


# --- operator resolution ---------------------------------------------------------------------


def check_resolvable(entries: Mapping[str, Entry] | None, exception_id: str) -> Entry:
    """The entry an operator may resolve; Refused when the ledger does not know it or it is closed."""
    entry = (entries or {}).get(exception_id)
    if entry is None:
        raise Refused(f"exception {exception_id!r} is not in the exception ledger")
    if entry.resolved:
        res = entry.resolution or {}
        by = f" by {res['resolved_by']}" if res.get("resolved_by") else ""
        at = f" at {res['resolved_at']}" if res.get("resolved_at") else ""
        raise Refused(f"exception {exception_id!r} is already RESOLVED{by}{at}")
    return entry


def resolution(exception_id: str, operator: str, kind: str, note: str | None, now: dt.datetime) -> Output:
    """An ExceptionResolution (key: the exception id) closing ``exception_id``."""
    value = {
        "exception_id": exception_id,
        "resolved_at": now.isoformat(),
        "resolved_by": operator,
        "resolution": kind,
        "note": note,
    }
    return ExceptionResolved(exception_id, value)


def operator_audit(
    audit_id: str,
    action: str,
    operator: str,
    subject_id: str,
    now: dt.datetime,
    correlation_id: str | None = None,
    causation_ids: Iterable[str] = (),
    topic: str | None = None,
    detail: str | None = None,
) -> Output:
    """An AuditRecord of an operator's action, keyed by the correlation id when known, else the subject."""
    value = {
        "audit_id": audit_id,
        "action": action,
        "actor": operator,
        "actor_kind": "OPERATOR",
        "occurred_at": now.isoformat(),
        "correlation_id": correlation_id,
        "subject_id": subject_id,
        "causation_ids": list(causation_ids),
        "topic": topic,
        "detail": detail,
    }
    return AuditRecord(correlation_id or subject_id, value)


def resolve(
    entries: Mapping[str, Entry] | None, exception_id: str, operator: str, note: str, now: dt.datetime
) -> list[Output]:
    """A manual resolution and its audit record; Refused for an unknown or already resolved exception."""
    entry = check_resolvable(entries, exception_id)
    return [
        resolution(exception_id, operator, "MANUAL", note, now),
        operator_audit(
            f"audit:{exception_id}:resolved",
            "EXCEPTION_RESOLVED",
            operator,
            exception_id,
            now,
            correlation_id=entry.correlation_id,
            causation_ids=[exception_id],
            topic=RESOLUTIONS_TOPIC,
            detail=f"resolved manually (was {entry.status}): {note}"[:2000],
        ),
    ]


# --- rendering -------------------------------------------------------------------------------


def render_table(entries: list[Entry], now_ms: int) -> str:
    if not entries:
        return "no exceptions match\n"
    rows = [
        [
            "id",
            "status",
            "reason",
            "severity",
            "owner",
            "correlation",
            "at risk",
            "raised at",
            "age",
            "escalated",
        ]
    ]
    for e in entries:
        rows.append(
            [
                e.exception_id,
                e.status,
                e.reason_code or "-",
                e.severity or "-",
                e.owner_team or "-",
                e.correlation_id or "-",
                money(e.amount_at_risk, e.currency),
                iso(e.raised_at_ms) or "-",
                age(e.age_ms(now_ms)),
                _escalated(e),
            ]
        )
    open_count = sum(1 for e in entries if not e.resolved)
    return "\n".join([*grid(rows, right={6, 8}), f"{len(entries)} exception(s), {open_count} not resolved"]) + "\n"


def _masked_key(key: bytes | None) -> str | None:
    return None if key is None else mask_text(show_bytes(key))


def _masked_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: mask_text(v) for k, v in headers.items()}


def _withheld(value: bytes | None) -> str:
    if value is None:
        return "(null)"
    return f"({len(value)} bytes) withheld: it may hold personal data (--raw shows it)"


def render_detail(e: Entry, now_ms: int, raw: bool = False) -> str:
    """The detail view; the original value is withheld and the key and headers masked unless ``raw``."""
    out = [
        f"exception      {e.exception_id}",
        f"status         {e.status}",
        f"reason         {e.reason_code or '-'} ({e.exception_type or '-'})",
        f"severity       {e.severity or '-'}",
        f"owner team     {e.owner_team or '-'} (SLA {e.sla_minutes if e.sla_minutes is not None else '-'} min)",
        f"correlation    {e.correlation_id or '-'}",
        f"amount at risk {money(e.amount_at_risk, e.currency)}",
        f"customer facing {'yes' if e.customer_facing else 'no'}",
        f"raised at      {iso(e.raised_at_ms) or '-'} (age {age(e.age_ms(now_ms))})",
        f"updated at     {e.updated_at or '-'}",
        f"replay         of {e.replay_of or '-'}, count {e.replay_count}",
        f"detail         {e.detail or '-'}",
        "lineage",
        *(f"  {k}: {_plain(v)}" for k, v in e.lineage.items()),
        f"original key   {show_bytes(e.original_key) if raw else mask_text(show_bytes(e.original_key))}",
        f"original value {show_bytes(e.original_value) if raw else _withheld(e.original_value)}",
        "original headers" + ("" if e.original_headers else " (none)"),
        *(
            f"  {k}: {v}"
            for k, v in sorted((e.original_headers if raw else _masked_headers(e.original_headers)).items())
        ),
        "resolution" + ("" if e.resolution else " (none)"),
        *(f"  {k}: {_plain(v)}" for k, v in (e.resolution or {}).items()),
        "escalation" + ("" if e.escalation else " (none)"),
        *(f"  {k}: {_plain(v)}" for k, v in (e.escalation or {}).items()),
    ]
    return "\n".join(out) + "\n"


def _escalated(e: Entry) -> str:
    if not e.escalation:
        return "no"
    team, mode = e.escalation.get("route_team"), e.escalation.get("mode")
    return "yes" + (f" ({team}{', ' + mode if mode else ''})" if team else "")


def _plain(v: Any) -> str:
    return "-" if v is None else json.dumps(v) if isinstance(v, dict | list) else str(v)


# --- bytes, numbers and times ------------------------------------------------------------------


def avro_string_key(data: bytes | None) -> str | None:
    """The string a Confluent wire-format key holds when its record is a single string (``{"id": ...}``)."""
    if data is None or len(data) < 6 or data[0] != 0:
        return None
    body = data[5:]
    n, shift, i = 0, 0, 0
    while i < len(body):  # zig-zag varint length
        b = body[i]
        n |= (b & 0x7F) << shift
        i += 1
        if not b & 0x80:
            break
        shift += 7
        if shift > 63:
            return None
    else:
        return None
    length = (n >> 1) ^ -(n & 1)
    if length < 0 or i + length != len(body):
        return None
    try:
        text = body[i:].decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if text.isprintable() else None


def text_of(data: bytes | None) -> str | None:
    """``data`` as text when it is printable UTF-8 (tabs and newlines allowed), else None."""
    if data is None:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if all(ch.isprintable() or ch in "\t\r\n" for ch in text) else None


def key_label(data: bytes | None) -> str:
    """A key for a table cell: its text, the id of an Avro string key, else hex."""
    if data is None:
        return "(null)"
    text = text_of(data)
    if text is not None:
        return text
    avro = avro_string_key(data)
    return f"{avro} (avro)" if avro is not None else f"0x{data.hex()}"


def show_bytes(data: bytes | None) -> str:
    """Bytes for a detail view: UTF-8 when printable, else hex (plus an Avro string key's id)."""
    if data is None:
        return "(null)"
    text = text_of(data)
    if text is not None:
        return f"({len(data)} bytes, utf-8) {text}"
    avro = avro_string_key(data)
    extra = f" [avro key id: {avro}]" if avro is not None else ""
    return f"({len(data)} bytes, hex) {data.hex()}{extra}"


def unb64(value: Any) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not base64: {exc}") from exc


def _b64(value: bytes | None) -> str | None:
    return None if value is None else base64.b64encode(value).decode("ascii")


def to_ms(value: Any) -> int | None:
    """Epoch milliseconds of an ISO-8601 string (no offset means UTC), a datetime or an epoch-ms number."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, dt.datetime):
        stamp = value
    else:
        text = str(value).strip()
        if text.lstrip("-").isdigit():
            return int(text)
        stamp = dt.datetime.fromisoformat(text)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return int(stamp.timestamp() * 1000)


def iso(ms: int | None) -> str | None:
    return None if ms is None else dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds")


def age(ms: int | None) -> str:
    if ms is None:
        return "-"
    s = ms // 1000
    d, h, m = s // 86400, s // 3600 % 24, s // 60 % 60
    if d:
        return f"{d}d{h:02d}h"
    if h:
        return f"{h}h{m:02d}m"
    if m:
        return f"{m}m{s % 60:02d}s"
    return f"{s}s"


def money(amount: Decimal | None, currency: str | None) -> str:
    return "-" if amount is None else f"{amount:,.2f} {currency or '???'}"


def grid(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]

    def cell(i: int, v: str) -> str:
        return v.rjust(widths[i]) if i in right else v.ljust(widths[i])

    return ["  ".join(cell(i, v) for i, v in enumerate(r)).rstrip() for r in rows]


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"not a decimal: {value!r}") from exc


def _int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    return int(value)
