"""Exception state: one row per exception id, folded from exception records, resolutions and SLA checks.

Exception and resolution records travel on different topics, so either may arrive first: a
resolution seen before its exception leaves a RESOLVED row that the exception then fills in. An
open exception past its SLA is escalated once, on the route the rules pick. No Faust, no I/O.

A resolved row keeps no payload (``without_payload``) and is tombstoned after the retention period
(``forget_at_ms``). Row (JSON): ``{"exception": ExceptionRecord | None, "status", "resolution":
ExceptionResolution | None, "escalation": Escalation | None, "updated_at"}`` with JSON-mode values (decimals as strings,
instants ISO-8601, bytes base64): the format ``crm-erp-sync exceptions`` reads from the changelog.
"""

from __future__ import annotations

import base64
import datetime as dt
from decimal import Decimal
from typing import Any

from app.domain.envelope import SERVICE_ACTOR
from app.domain.exceptions.escalation import Route, due_at, escalation, route_for
from app.domain.fx import Rates
from app.domain.masking import mask_text
from app.domain.outputs import AuditRecord, Escalation, ExceptionRaised, Output

OPEN_STATES = frozenset({"OPEN", "PARKED", "RETRYING", "DEAD_LETTERED"})
Row = dict[str, Any]


def jsonable(value: Any) -> Any:
    """A decoded Avro record in the ledger's JSON form."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def is_open(row: Row | None) -> bool:
    return row is not None and row["status"] in OPEN_STATES


def escalation_due_ms(row: Row | None) -> int | None:
    """When the row must be checked for escalation (None: resolved, escalated or not yet known)."""
    if not is_open(row) or row["escalation"] is not None or row["exception"] is None:
        return None
    return int(due_at(row["exception"]).timestamp() * 1000)


def without_payload(exception: dict[str, Any] | None) -> dict[str, Any] | None:
    """A resolved exception keeps its context, not the failed message's bytes (those stay on the
    dead-letter topic for as long as it keeps them)."""
    if exception is None:
        return None
    return {**exception, "original_key": None, "original_value": None, "original_headers": {}}


def forget_at_ms(row: Row | None, retention: dt.timedelta) -> int | None:
    """When a resolved row may be tombstoned (None: open, or not yet known)."""
    if row is None or is_open(row):
        return None
    return int((dt.datetime.fromisoformat(row["updated_at"]) + retention).timestamp() * 1000)


def on_exception(row: Row | None, exception: dict[str, Any], now: dt.datetime) -> tuple[Row, list[Output]]:
    if row is not None and row["exception"] is not None:
        return row, []  # the same exception again (redelivery): nothing new
    resolved_first = row is not None
    row = {
        "exception": without_payload(exception) if resolved_first else exception,
        "status": "RESOLVED" if resolved_first else exception["status"],
        "resolution": row["resolution"] if resolved_first else None,
        "escalation": None,
        "updated_at": now.isoformat(),
    }
    detail = f"{exception['reason_code']} ({exception['severity']}): {exception['detail'][:300]}"
    return row, [_audit(exception["exception_id"], exception.get("correlation_id"), "EXCEPTION_RAISED", now, detail)]


def on_resolution(row: Row | None, resolution: dict[str, Any], now: dt.datetime) -> tuple[Row, list[Output]]:
    if row is not None and row["status"] == "RESOLVED":
        return row, []
    row = dict(row or {"exception": None, "escalation": None})
    row.update(
        exception=without_payload(row["exception"]),
        status="RESOLVED",
        resolution=resolution,
        updated_at=now.isoformat(),
    )
    if resolution["resolved_by"] != SERVICE_ACTOR:
        return row, []  # operators' resolutions are audited by the command that made them
    exception = row["exception"] or {}
    note = f"{resolution['resolution']}: {resolution.get('note') or ''}"
    return row, [_audit(resolution["exception_id"], exception.get("correlation_id"), "EXCEPTION_RESOLVED", now, note)]


def on_check(
    row: Row | None, routes: list[Route], now: dt.datetime, rates: Rates | None = None
) -> tuple[Row | None, list[Output]]:
    due = escalation_due_ms(row)
    if row is None or due is None or now.timestamp() * 1000 < due:
        return row, []
    exception = row["exception"]
    route = route_for(routes, exception, rates)
    record = escalation(exception, route, now)
    row = {**row, "escalation": record, "updated_at": now.isoformat()}
    detail = (
        f"{route.mode} {route.team} on {route.channel} (route {route.name}), {record['overdue_minutes']} min over SLA"
    )
    return row, [
        Escalation(exception["exception_id"], record),
        _audit(exception["exception_id"], exception.get("correlation_id"), "ESCALATED", now, detail),
    ]


def _audit(subject: str, correlation_id: str | None, action: str, now: dt.datetime, detail: str) -> Output:
    value = {
        "audit_id": f"audit:{subject}:{action.lower()}",
        "action": action,
        "actor": SERVICE_ACTOR,
        "actor_kind": "SERVICE",
        "occurred_at": now.isoformat(),
        "correlation_id": correlation_id,
        "subject_id": subject,
        "causation_ids": [subject],
        "topic": None,
        "detail": mask_text(detail)[:500],
    }
    return AuditRecord(correlation_id or subject, value, about=Escalation if action == "ESCALATED" else ExceptionRaised)
