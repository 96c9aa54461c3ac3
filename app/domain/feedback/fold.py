"""ERP events flowing back: fold them into the deal's order, tell the CRM, judge parity.

``on_erp_event(state, event)`` is the ERP-side twin of ``orders.decide``: it updates the state in
place and returns the outputs, namely a CRM update command (only ERP-owned fields), a reason-coded
exception for a rejection, and drift alerts opened or resolved. An event id already applied is a
duplicate (a redelivered message's outputs are the engine's to re-send). No Faust, no I/O.
"""

from __future__ import annotations

import datetime as dt

from app.domain.audit import command_audit
from app.domain.envelope import SERVICE_ACTOR
from app.domain.errors import ReasonCode
from app.domain.exceptions.taxonomy import classify
from app.domain.feedback import crm_view
from app.domain.feedback.kpis import Reached, measures
from app.domain.feedback.lifecycle import ErpEvent, ErpKind, ErpView, apply
from app.domain.masking import mask_text
from app.domain.orders.deal import DealState
from app.domain.orders.decide import DealChange, Decision, Outcome, rebuild_create, retention
from app.domain.orders.validation import Policy
from app.domain.outputs import CrmUpdate, ExceptionRaised, ExceptionResolved, Output, retry
from app.domain.parity.aggregate import fact_outputs
from app.domain.parity.drift import judge
from app.domain.parity.rules import billed_at_once

# Field ownership: the ERP owns fulfilment and financial state, so these are the only CRM fields the
# service writes (besides the command's identity); everything commercial stays CRM-owned.
CRM_WRITABLE = frozenset(
    {
        "erp_customer_number",
        "erp_order_number",
        "order_status",
        "fulfilment_status",
        "invoice_status",
        "payment_status",
        "credit_hold",
        "disputed",
        "amount_invoiced",
        "amount_paid",
        "currency",
        "service_activated_at",
        "customer_accepted_at",
    }
)
CRM_UPDATE_IDENTITY = frozenset({"envelope", "opportunity_id", "account_id"})


def on_erp_event(
    state: DealState | None, event: ErpEvent, delivery: str, policy: Policy, now: dt.datetime, refs=None
) -> Decision:
    state = state if state is not None else DealState(opportunity_id=event.correlation_id)
    erp = state.erp = state.erp or ErpView()
    if erp.seen(event.event_id):
        return Decision(state, Outcome.DUPLICATE)
    before = Reached.of(erp)
    apply(erp, event)
    update = crm_update(state, event, now)
    outputs = [update, _update_audit(update, event, now)]
    retry = _retry(state, erp, event, delivery, refs, policy, now) if event.kind is ErpKind.REJECTED else []
    outputs += _rejection(state, erp, event, now, retrying=bool(retry))
    outputs += retry
    outputs += judge(state, policy, now)
    outputs += fact_outputs(state)
    retention.mark(state, policy, now, changed=True)
    at_once = billed_at_once(state.header)
    kpis = measures(before, state, event.occurred_at_ms, policy.amount_tolerance, at_once)
    return Decision(state, Outcome.APPLIED, outputs, measures=kpis)


def _update_audit(update: CrmUpdate, event: ErpEvent, now: dt.datetime) -> Output:
    command_id = update.value["envelope"]["command_id"]
    return command_audit(command_id, update.key, [event.lineage.coordinates], CrmUpdate, now)


def crm_update(state: DealState, event: ErpEvent, now: dt.datetime) -> CrmUpdate:
    """The CRM's view of the order after ``event``: ERP-owned fields only."""
    command_id = f"{state.opportunity_id}:crm-update:{event.event_id}"
    return crm_view.crm_update(state, command_id, [event.event_id], event.lineage, now)


def _retry(state: DealState, erp: ErpView, event: ErpEvent, delivery: str, refs, policy: Policy, now) -> list[Output]:
    """A retryable rejection sends the same create back through the next retry tier (same command id)."""
    if not event.body.get("retryable") or refs is None or erp.retries >= len(policy.retry_tiers):
        return []
    tier, delay = policy.retry_tiers[erp.retries]
    detail = f"the ERP rejected it as retryable ({event.body['reason_code']}): sent again after retry tier {tier}"
    change = DealChange(state.opportunity_id, None, event.lineage, delivery)
    rebuilt = rebuild_create(state, change, refs, policy, now, f"retry-{erp.retries + 1}", detail)
    if rebuilt is None:
        return []
    erp.retries += 1
    command, audit = rebuilt
    headers = (
        ("x-retry-attempt", str(erp.retries)),
        ("x-retry-due-ms", str(int(now.timestamp() * 1000 + delay * 1000))),
        ("x-reason", str(ReasonCode.ERP_REJECTED)),
    )
    return [retry(command, tier, headers), audit]


def _rejection(state: DealState, erp: ErpView, event: ErpEvent, now: dt.datetime, retrying: bool) -> list[Output]:
    """A rejection raises an exception linked to the deal; a later acceptance resolves it."""
    reason = ReasonCode.ERP_REJECTED
    exception_id = state.open_exceptions.get(reason)
    if event.kind is ErpKind.ACCEPTED and exception_id:
        del state.open_exceptions[reason]
        resolution = {
            "exception_id": exception_id,
            "resolved_at": now.isoformat(),
            "resolved_by": SERVICE_ACTOR,
            "resolution": "SUPERSEDED",
            "note": f"the ERP accepted the order ({event.event_id})",
        }
        return [ExceptionResolved(exception_id, resolution)]
    if event.kind is not ErpKind.REJECTED or erp.accepted_at_ms is not None or exception_id:
        return []
    exception_id = f"{state.opportunity_id}:{reason}:{event.event_id}"
    state.open_exceptions[reason] = exception_id
    c = classify(reason)
    b = event.body
    header = state.header
    value = {
        "exception_id": exception_id,
        "reason_code": str(reason),
        "exception_type": str(c.type),
        "severity": str(c.severity),
        "correlation_id": state.opportunity_id,
        "amount_at_risk": str(header.amount) if header and header.amount is not None else None,
        "currency": header.currency if header else None,
        "customer_facing": c.customer_facing,
        "owner_team": c.owner_team,
        "sla_minutes": c.sla_minutes,
        "detail": mask_text(
            f"ERP {b['reason_code']}: {b['reason_text']} (retryable: {str(b.get('retryable', False)).lower()})"
        )[:2000],
        "lineage": event.lineage.record(None),
        "original_key": None,
        "original_value": None,
        "original_headers": {},
        "raised_at": now.isoformat(),
        "replay_of": None,
        "replay_count": 0,
        "status": "RETRYING" if retrying else "OPEN",
    }
    return [ExceptionRaised(state.opportunity_id, value)]
