"""Drift alert lifecycle: open an alert when a finding appears, resolve it when parity is restored.

One open alert per (deal, finding key) at a time, so a consumer can show a live list: the alert
id is ``<opportunity>:<finding key>:<n>`` (n counts how often that finding opened), the open and
the resolved record carry the same id. No Faust, no I/O.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from app.domain.audit import alert_audit
from app.domain.feedback.lifecycle import AlertRef
from app.domain.orders.deal import DealState
from app.domain.orders.validation import Policy
from app.domain.outputs import DriftAlert, Output
from app.domain.parity.rules import Finding, findings

CENT = Decimal("0.01")


def judge(state: DealState, policy: Policy, now: dt.datetime) -> list[Output]:
    """Alert records (and their audit records) for every finding opened or resolved just now."""
    if state.order is None and state.erp is None and not state.alerts:
        return []
    now_ms = int(now.timestamp() * 1000)
    found = findings(state, now_ms, policy.slas, policy.amount_tolerance)
    outputs: list[Output] = []
    for key in sorted(set(state.alerts) - set(found)):
        ref = state.alerts.pop(key)
        outputs += _records(state, ref, None, key, now)
    for key in sorted(set(found) - set(state.alerts)):
        seq = state.alert_seq.get(key, 0) + 1
        state.alert_seq[key] = seq
        finding = found[key]
        ref = state.alerts[key] = AlertRef(
            alert_id=f"{state.opportunity_id}:{key}:{seq}",
            opened_at_ms=now_ms,
            kind=finding.kind,
            severity=finding.severity,
        )
        outputs += _records(state, ref, finding, key, now)
    return outputs


def money(amount: Decimal | None) -> str | None:
    return None if amount is None else str(amount.quantize(CENT, ROUND_HALF_UP))


def _records(state: DealState, ref: AlertRef, finding: Finding | None, key: str, now: dt.datetime) -> list[Output]:
    opened = dt.datetime.fromtimestamp(ref.opened_at_ms / 1000, dt.UTC)
    erp = state.erp
    header = state.header
    value: dict[str, Any] = {
        "alert_id": ref.alert_id,
        "kind": ref.kind,
        "state": "OPEN" if finding else "RESOLVED",
        "severity": ref.severity,
        "correlation_id": state.opportunity_id,
        "customer_id": header.account_id if header else None,
        "order_number": erp.order_number if erp else None,
        "amount_at_risk": money(finding.amount_at_risk) if finding else None,
        "currency": finding.currency if finding else (header.currency if header else None),
        "expected": finding.expected if finding else None,
        "observed": finding.observed if finding else None,
        "detail": finding.detail if finding else f"parity restored: {key} no longer applies",
        "suggested_owner": finding.owner if finding else "none",
        "opened_at": opened.isoformat(),
        "resolved_at": None if finding else now.isoformat(),
        "observed_at": now.isoformat(),
    }
    causation = [e.event_id for e in (erp.events[-1:] if erp else [])]
    audit = alert_audit(ref.alert_id, finding is not None, state.opportunity_id, state.opportunity_id, causation,
                        value["detail"], now)  # fmt: skip
    return [DriftAlert(ref.alert_id, value), audit]
