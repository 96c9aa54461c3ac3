"""The audit record of a command or update the service sends, and of a drift alert opened or
resolved: every one of them has one.

``audit:<command id>`` names it, so a command re-sent with the same id (a redelivery, a re-issue)
is audited under the same id and the audit topic reads as one entry per decision; an alert's is
``audit:<alert id>:<open|resolved>``.
"""

from __future__ import annotations

import datetime as dt

from app.domain.envelope import SERVICE_ACTOR
from app.domain.outputs import AuditRecord, DriftAlert, Output


def command_audit(
    command_id: str,
    correlation_id: str,
    causation: list[str],
    about: type[Output],
    now: dt.datetime,
    detail: str | None = None,
) -> AuditRecord:
    """The audit record of a command of kind ``about`` (the edge names its topic in the record)."""
    value = {
        "audit_id": f"audit:{command_id}",
        "action": "COMMAND_EMITTED",
        "actor": SERVICE_ACTOR,
        "actor_kind": "SERVICE",
        "occurred_at": now.isoformat(),
        "correlation_id": correlation_id,
        "subject_id": command_id,
        "causation_ids": causation,
        "topic": None,
        "detail": detail,
    }
    return AuditRecord(correlation_id, value, about=about)


def alert_audit(
    alert_id: str,
    opening: bool,
    key: str,
    correlation_id: str | None,
    causation: list[str],
    detail: str,
    now: dt.datetime,
) -> AuditRecord:
    """The audit record of drift alert ``alert_id`` opened (``opening``) or resolved; ``key``: the
    audit record's message key."""
    value = {
        "audit_id": f"audit:{alert_id}:{'open' if opening else 'resolved'}",
        "action": "ALERT_OPENED" if opening else "ALERT_RESOLVED",
        "actor": SERVICE_ACTOR,
        "actor_kind": "SERVICE",
        "occurred_at": now.isoformat(),
        "correlation_id": correlation_id,
        "subject_id": alert_id,
        "causation_ids": causation,
        "topic": None,
        "detail": detail[:500],
    }
    return AuditRecord(key, value, about=DriftAlert)
