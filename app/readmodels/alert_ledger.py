"""``crm-erp-sync alerts``: the drift alert ledger as operators read it, and their actions.

Pure: rows come from the ``alert-ledger`` changelog (``app/ops/alerts_cli.py`` reads it); this module
parses, selects and renders them, and builds an operator's action with its audit record (who, why).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from app.domain.alert_ledger import Row, Status
from app.domain.errors import ServiceError
from app.domain.outputs import AlertActionRecord, Output
from app.readmodels.exception_ledger import age, grid, operator_audit

ACTIONS_TOPIC = "sync.alert-actions"


class Refused(ServiceError):
    """The action does not apply: no such alert, or it is already resolved (or acknowledged)."""


def changelog_topic(app_id: str) -> str:
    return f"{app_id}-alert-ledger-changelog"


def parse(values: Mapping[bytes, bytes]) -> tuple[dict[str, Row], int]:
    """Every row by alert id, and how many values did not parse."""
    rows: dict[str, Row] = {}
    bad = 0
    for value in values.values():
        try:
            row = Row.model_validate_json(value)
        except ValueError:
            bad += 1
            continue
        rows[row.alert_id] = row
    return rows, bad


def select(rows: Mapping[str, Row], open_only: bool = False, kinds: frozenset[str] = frozenset()) -> list[Row]:
    """Rows oldest first; ``open_only``: not resolved; ``kinds``: only these alert kinds."""
    chosen = [
        r
        for r in rows.values()
        if (not open_only or r.status is not Status.RESOLVED) and (not kinds or (r.alert or {}).get("kind") in kinds)
    ]
    return sorted(chosen, key=lambda r: ((r.alert or {}).get("opened_at") or "", r.alert_id))


def act(
    rows: Mapping[str, Row] | None, alert_id: str, action: str, operator: str, note: str, now: dt.datetime
) -> list[Output]:
    """The AlertAction and its audit record; Refused when it does not apply."""
    row = (rows or {}).get(alert_id)
    if row is None:
        raise Refused(f"{alert_id!r} is not in the alert ledger")
    if row.status is Status.RESOLVED:
        raise Refused(f"{alert_id} is already resolved (by {row.resolved_by})")
    if action == "ACKNOWLEDGE" and row.status is Status.ACKNOWLEDGED:
        raise Refused(f"{alert_id} is already acknowledged")
    action_id = f"{alert_id}:{action.lower()}:{int(now.timestamp() * 1000)}"
    value = {"action_id": action_id, "alert_id": alert_id, "action": action, "actor": operator, "note": note,
             "acted_at": now.isoformat()}  # fmt: skip
    verb = "acknowledged" if action == "ACKNOWLEDGE" else "resolved"
    audit = operator_audit(
        f"audit:{action_id}",
        "ALERT_ACKNOWLEDGED" if action == "ACKNOWLEDGE" else "ALERT_RESOLVED",
        operator,
        alert_id,
        now,
        correlation_id=(row.alert or {}).get("correlation_id"),
        causation_ids=[alert_id],
        topic=ACTIONS_TOPIC,
        detail=f"{verb} by hand (was {row.status}): {note}"[:2000],
    )
    return [AlertActionRecord(alert_id, value), audit]


def render_table(rows: list[Row], now_ms: int) -> str:
    head = ["alert", "kind", "severity", "status", "at risk", "owner", "age", "escalated"]
    lines = [head]
    for r in rows:
        a = r.alert or {}
        opened = dt.datetime.fromisoformat(a["opened_at"]) if a.get("opened_at") else None
        money = f"{a['amount_at_risk']} {a.get('currency') or ''}".strip() if a.get("amount_at_risk") else "-"
        esc = f"{r.escalation['mode']} {r.escalation['route_team']}" if r.escalation else "-"
        when = age(now_ms - int(opened.timestamp() * 1000)) if opened else "-"
        lines.append([r.alert_id, str(a.get("kind", "?")), str(a.get("severity", "?")), str(r.status), money,
                      str(a.get("suggested_owner") or "-"), when, esc])  # fmt: skip
    return "\n".join(grid(lines, right={4})) + "\n"


def render_detail(row: Row) -> str:
    a = row.alert or {}
    status = str(row.status)
    if row.status is Status.RESOLVED:
        status += f" by {row.resolved_by} at {row.resolved_at}: {row.resolution_note or ''}"
    esc = row.escalation
    out = [
        f"alert        {row.alert_id}",
        f"kind         {a.get('kind')} ({a.get('severity')}), owner {a.get('suggested_owner')}",
        f"deal         {a.get('correlation_id') or '-'}  order {a.get('order_number') or '-'}",
        f"at risk      {a.get('amount_at_risk') or '-'} {a.get('currency') or ''}".rstrip(),
        f"expected     {a.get('expected') or '-'}",
        f"observed     {a.get('observed') or '-'}",
        f"detail       {a.get('detail') or '-'}",
        f"opened       {a.get('opened_at') or '-'}",
        f"status       {status}",
        f"escalated    {esc['escalated_at'] + ' to ' + esc['route_team'] if esc else '-'}",
    ]
    out += [f"action       {x.acted_at} {x.action} by {x.actor}: {x.note or ''}" for x in row.actions]
    return "\n".join(out) + "\n"
