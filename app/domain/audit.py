"""The audit record of a command or update the service sends: every one of them has one.

``audit:<command id>`` names it, so a command re-sent with the same id (a redelivery, a re-issue)
is audited under the same id and the audit topic reads as one entry per decision.
"""

from __future__ import annotations

import datetime as dt

from app.domain.envelope import SERVICE_ACTOR
from app.domain.outputs import AuditRecord, Output


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
