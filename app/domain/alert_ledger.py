"""The drift alert ledger: one row per alert id, folded from alert records, operator actions and SLA checks.

Drift alerts (money and lifecycle discrepancies, renewals, ownership) are opened and resolved by the
flows that judge parity. The ledger adds what people do about them: an operator acknowledges one
(someone works on it: it is not escalated) or resolves it by hand (closed, with who and why); an
alert left open and unacknowledged past the SLA of its severity is escalated once, on the route the
escalation rules pick, thresholds converted through the rate table. The service's own RESOLVED
record closes it too. The audit records of operator actions are produced by the command that made
them (``crm-erp-sync alerts``); the ledger audits its escalations. No Faust, no I/O.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.domain.envelope import SERVICE_ACTOR
from app.domain.exceptions.escalation import Route, route_for
from app.domain.fx import Rates
from app.domain.masking import mask_text
from app.domain.outputs import AuditRecord, Escalation, Output


class Status(StrEnum):
    OPEN = "OPEN"
    ACKNOWLEDGED = "ACKNOWLEDGED"
    RESOLVED = "RESOLVED"


class Action(BaseModel):
    """An operator's action as the ledger keeps it (``AlertAction``, JSON-mode values)."""

    model_config = ConfigDict(extra="ignore")

    action_id: str
    alert_id: str
    action: str  # ACKNOWLEDGE | RESOLVE
    actor: str
    note: str | None = None
    acted_at: str


class Row(BaseModel):
    """The ledger's row of one alert (JSON in the ``alert-ledger`` table; ``crm-erp-sync alerts`` reads it)."""

    model_config = ConfigDict(extra="forbid")

    alert_id: str
    alert: dict[str, Any] | None = None  # the OPEN record (kind, amounts, owner, detail), JSON-mode
    status: Status = Status.OPEN
    resolved_by: str | None = None
    resolved_at: str | None = None
    resolution_note: str | None = None
    actions: list[Action] = Field(default_factory=list)
    escalation: dict[str, Any] | None = None  # the Escalation record, once escalated
    updated_at: str


def on_alert(row: Row | None, record: dict[str, Any], now: dt.datetime) -> Row:
    """A DriftAlert record (OPEN or RESOLVED) from the flow that judged it."""
    alert_id = record["alert_id"]
    row = row or Row(alert_id=alert_id, updated_at=now.isoformat())
    update: dict[str, Any] = {"updated_at": now.isoformat()}
    if record["state"] == "OPEN":
        update["alert"] = record
    elif row.status is not Status.RESOLVED:  # an operator's earlier resolution stands as it was
        update |= {
            "status": Status.RESOLVED,
            "resolved_by": SERVICE_ACTOR,
            "resolved_at": record.get("resolved_at") or now.isoformat(),
            "resolution_note": record.get("detail"),
        }
        if row.alert is None:
            update["alert"] = record
    return row.model_copy(update=update)


def on_action(row: Row | None, action: Action, now: dt.datetime) -> Row | None:
    """An operator's ACKNOWLEDGE or RESOLVE; None when there is no such alert (nothing to keep)."""
    if row is None or any(a.action_id == action.action_id for a in row.actions):
        return row
    update: dict[str, Any] = {"actions": [*row.actions, action], "updated_at": now.isoformat()}
    if action.action == "RESOLVE" and row.status is not Status.RESOLVED:
        update |= {"status": Status.RESOLVED, "resolved_by": action.actor, "resolved_at": action.acted_at,
                   "resolution_note": action.note}  # fmt: skip
    elif action.action == "ACKNOWLEDGE" and row.status is Status.OPEN:
        update["status"] = Status.ACKNOWLEDGED
    return row.model_copy(update=update)


def due_ms(row: Row | None, slas: dict[str, float]) -> int | None:
    """When an open, unacknowledged, unescalated alert runs out of its SLA (None: nothing due)."""
    if row is None or row.status is not Status.OPEN or row.escalation is not None or row.alert is None:
        return None
    opened = dt.datetime.fromisoformat(str(row.alert["opened_at"]))
    minutes = slas.get(str(row.alert.get("severity")), slas["LOW"])
    return int((opened + dt.timedelta(minutes=minutes)).timestamp() * 1000)


def forget_at_ms(row: Row | None, retention: dt.timedelta) -> int | None:
    """A resolved row goes after the retention period (None: still open)."""
    if row is None or row.status is not Status.RESOLVED:
        return None
    return int((dt.datetime.fromisoformat(row.updated_at) + retention).timestamp() * 1000)


def on_check(
    row: Row | None, routes: list[Route], slas: dict[str, float], rates: Rates | None, now: dt.datetime
) -> tuple[Row | None, list[Output]]:
    """Escalate the alert once if its SLA ran out while nobody acknowledged it."""
    due = due_ms(row, slas)
    if row is None or row.alert is None or due is None or now.timestamp() * 1000 < due:
        return row, []
    alert = row.alert
    route = route_for(routes, alert, rates)
    record = {
        "escalation_id": f"esc:{row.alert_id}",
        "exception_id": None,
        "route_team": route.team,
        "channel": route.channel,
        "mode": route.mode,
        "reason_code": alert["kind"],
        "severity": alert["severity"],
        "amount_at_risk": alert.get("amount_at_risk"),
        "currency": alert.get("currency"),
        "overdue_minutes": max(0, int((now.timestamp() * 1000 - due) // 60000)),
        "escalated_at": now.isoformat(),
        "alert_id": row.alert_id,
    }
    detail = (
        f"{route.mode} {route.team} on {route.channel} (route {route.name}), {record['overdue_minutes']} min over SLA"
    )
    audit = {
        "audit_id": f"audit:{row.alert_id}:escalated",
        "action": "ESCALATED",
        "actor": SERVICE_ACTOR,
        "actor_kind": "SERVICE",
        "occurred_at": now.isoformat(),
        "correlation_id": alert.get("correlation_id"),
        "subject_id": row.alert_id,
        "causation_ids": [row.alert_id],
        "topic": None,
        "detail": mask_text(detail)[:500],
    }
    key = alert.get("correlation_id") or row.alert_id
    row = row.model_copy(update={"escalation": record, "updated_at": now.isoformat()})
    return row, [Escalation(row.alert_id, record), AuditRecord(key, audit, about=Escalation)]
