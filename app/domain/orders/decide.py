"""Opportunity-to-order decisions: ``decide(state, change) -> (state, outputs, outcome)``.

No Faust, no Kafka, no I/O. The deal flow (app/flows/deals.py) loads the state, calls ``decide``
(which updates that state object in place and returns it in the Decision: the flow parses a fresh
one per message) and returns the state and outputs to the engine, which re-sends them unchanged if
the message is redelivered after a crash (app/engine/keyed.py). The guarantees live here:

* per-row ordering: a change at or behind the row's last applied source position is a duplicate
  or stale and changes nothing;
* deterministic command ids (``<opportunity>:create:<position that closed it>``,
  ``…:amend:<position>``, ``…:cancel:<position>``), so a re-emission carries the same id;
* at most one open order per closed-won deal: create once, amend on change, cancel on reopen/loss.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

import orjson

from app.domain import ownership
from app.domain.audit import command_audit
from app.domain.changes import Lineage, Op, RowChange
from app.domain.envelope import SERVICE_ACTOR, command_envelope
from app.domain.errors import ReasonCode
from app.domain.exceptions.taxonomy import ExceptionType, classify
from app.domain.feedback import crm_view
from app.domain.feedback.kpis import DealClosed, Measure
from app.domain.feedback.lifecycle import ErpView, crm_fields
from app.domain.masking import mask_text
from app.domain.orders import renewals, resync, retention
from app.domain.orders.deal import DealState, Header, Line, OrderRef, Pos, merge
from app.domain.orders.renewals import RenewalSeen
from app.domain.orders.validation import Failure, Policy, Resolved, validate
from app.domain.outputs import CrmUpdate, ExceptionRaised, ExceptionResolved, OrderAction, Output, SalesOrderCommand
from app.domain.parity.aggregate import fact_outputs, forget_outputs
from app.domain.parity.drift import judge

CANCELLED_KEPT = 4  # create ids of cancelled orders a deal remembers


class Outcome(StrEnum):
    APPLIED = "applied"  # state changed; maybe commands
    DUPLICATE = "duplicate"  # same position as the last applied one
    STALE = "stale"  # older than the last applied one
    PARKED = "parked"  # closed-won but waiting on a dependency
    REJECTED = "rejected"  # closed-won but incomplete: exceptions raised
    PENDING = "pending"  # closed-won, incomplete, within the grace period: nothing raised yet
    LOOP_SUPPRESSED = "loop_suppressed"  # written by the integration's own CRM user
    IGNORED = "ignored"  # nothing to do (a truncate, a recheck of a settled deal)
    RETIRED = "retired"  # settled for the retention period: the deal's rows are tombstoned


@dataclass(frozen=True, slots=True)
class DealChange:
    """A row change routed to its deal (``change`` None: re-check a parked deal)."""

    opportunity_id: str
    change: RowChange | None
    lineage: Lineage  # where the CRM change was read (for commands, exceptions, traces)
    delivery: str  # coordinates of the message that carried it here


@dataclass(slots=True)
class Decision:
    state: DealState
    outcome: Outcome
    outputs: list[Output] = field(default_factory=list)
    reasons: list[ReasonCode] = field(default_factory=list)
    measures: list[Measure] = field(default_factory=list)  # lifecycle KPIs this decision completed


def decide(state: DealState | None, event: DealChange, refs, policy: Policy, now: dt.datetime) -> Decision:
    opp = event.opportunity_id
    state = (
        state if state is not None else DealState(opportunity_id=opp)
    )  # updated in place: callers pass a fresh parse
    change = event.change
    if change is None and retention.due(state, policy, now):
        return Decision(state, Outcome.RETIRED, forget_outputs(state) + retention.row_index_outputs(state))
    told: list[Output] = []  # a renewal opportunity tells the deal it renews, whoever changed it
    if change is not None:
        before = state.header
        before_pos = state.header_pos if change.table == "opportunity" else state.line_pos.get(change.row_id)
        outcome = _apply(state, change)
        if outcome is not None:
            return Decision(state, outcome)
        told += resync.applied(state, change, before_pos, event.lineage, now)
        if change.table == "opportunity_line_item":
            state.line_partitions[change.row_id] = event.lineage.partition
        else:
            told += renewals.notice(before, state.header, opp, event.lineage)
        by_service = change.by_integration or (
            state.header is not None and state.header.last_modified_by == policy.integration_user
        )
        if change.table == "opportunity":
            told += _ownership(state, before, policy, event.lineage, now, by_service)
        if change.table == "opportunity" and by_service:
            retention.mark(state, policy, now, changed=True)
            return Decision(state, Outcome.LOOP_SUPPRESSED, told)

    if change is None and state.order is not None and not state.parked:
        decision = Decision(state, Outcome.IGNORED)  # an SLA check of a deal with an order: parity only
    else:
        was_closed = state.close_pos is not None
        decision = _evaluate(state, event, refs, policy, now)
        if not was_closed and state.close_pos is not None:
            decision.measures.append(DealClosed())
    decision.outputs += told
    decision.outputs += reissue_if_unaccepted(state, event, refs, policy, now)
    if decision.outcome not in (Outcome.REJECTED, Outcome.PARKED, Outcome.PENDING):  # the ordered term stands
        renewals.expect(state, policy)
    decision.outputs += renewals.requests(state, policy, event.lineage, now)
    decision.outputs += judge(state, policy, now)
    decision.outputs += fact_outputs(state)
    retention.mark(state, policy, now, changed=change is not None)
    return decision


def _ownership(
    state: DealState, before: Header | None, policy: Policy, lineage: Lineage, now: dt.datetime, by_service: bool
) -> list[Output]:
    """A CRM user's edit of an ERP-owned opportunity field: an OWNERSHIP_CONFLICT alert, and the ERP's
    values written back when the rules say restore; the service's own write-back only resolves."""
    header = state.header
    if header is None or state.erp is None or not policy.erp_owned:
        return []
    cancelled = state.order is None and bool(state.cancelled_orders)
    expected = crm_fields(state.erp, cancelled)
    conflicts, agree = ownership.deal_edit_conflicts(before, header, expected, policy.erp_owned)
    why = f"CRM change of {state.opportunity_id} by {header.last_modified_by}"
    outputs = ownership.judge(state.opportunity_id, state.owner_alerts, conflicts, agree, now, why,
                              open_new=not by_service, customer_id=header.account_id)  # fmt: skip
    if not by_service and any(c.field in policy.restore for c in conflicts):
        label = state.header_pos.position().label() if state.header_pos else "now"
        command_id = f"{state.opportunity_id}:restore:{label}"
        update = crm_view.crm_update(state, command_id, [lineage.coordinates], lineage, now)
        outputs += [update, command_audit(command_id, state.opportunity_id, [lineage.coordinates], CrmUpdate, now,
                                          "the ERP's values restored over a CRM user's edit")]  # fmt: skip
    return outputs


def on_gap(state: DealState | None, item: resync.SourceGap, refs, policy: Policy, now: dt.datetime) -> Decision:
    """A gap in one of the deal's records: the hole is recorded and the deal judged again (a won deal
    without an order now waits with AWAITING_RESYNC). A redelivered or superseded gap changes nothing."""
    state = state if state is not None else DealState(opportunity_id=item.opportunity_id)
    if not resync.gap(state, item.record_id, item.position):
        return Decision(state, Outcome.DUPLICATE)
    return decide(state, DealChange(item.opportunity_id, None, item.lineage, item.delivery), refs, policy, now)


def on_renewal(state: DealState | None, item: RenewalSeen, policy: Policy, now: dt.datetime) -> Decision:
    """A renewal opportunity of the deal changed stage: recorded, and a RENEWAL_MISSING alert judged
    again. A deal the service does not hold (retired, or never seen) keeps no state for it."""
    if state is None:
        return Decision(DealState(opportunity_id=item.opportunity_id), Outcome.IGNORED)
    if not renewals.seen(state, item):
        return Decision(state, Outcome.DUPLICATE)
    outputs = judge(state, policy, now)
    retention.mark(state, policy, now, changed=True)
    return Decision(state, Outcome.APPLIED, outputs)


def waiting_for(state: DealState, grace: dt.timedelta) -> bytes:
    """What a parked deal waits for (the parked table's value; the re-check timer compares it with
    the reference data it holds).

    In its grace period, while nothing is raised yet, only the grace end: it does not change as the
    deal's lines come in, so they cost no table write (~2 of 4 per deal in the benchmark, where the
    close often overtakes its lines). After it, the open reasons and what they depend on. Judged from
    the state alone: judged by the clock, a duplicate or a redelivery handled after the grace period,
    before its re-check, recorded neither a grace end nor a reason, and the deal was never re-checked
    (CI: a worker killed within a 1 s grace period)."""
    if state.failing_since is not None and not state.open_exceptions:
        return orjson.dumps({"grace_ends_ms": int((state.failing_since + grace).timestamp() * 1000)})
    header = state.header
    return orjson.dumps(
        {
            "account_id": header.account_id if header else None,
            "products": sorted({ln.product_id for ln in state.lines.values() if ln.product_id}),
            "currency": header.currency if header else None,
            "reasons": sorted(state.open_exceptions),
        }
    )


def _apply(state: DealState, change: RowChange) -> Outcome | None:
    """Apply the row change to the deal; an Outcome when there is nothing further to decide."""
    if change.op is Op.TRUNCATE:
        return Outcome.IGNORED
    if change.table == "opportunity":
        last = state.header_pos.position() if state.header_pos else None
        if not change.position.after(last):
            return Outcome.DUPLICATE if change.position == last else Outcome.STALE
        state.header_pos = Pos.of(change.position)
        if change.op is Op.DELETE:
            state.header = (state.header or Header()).model_copy(update={"deleted": True})
        else:
            state.header = merge(Header, state.header, change)
        return None
    line_id = change.row_id
    last = state.line_pos[line_id].position() if line_id in state.line_pos else None
    if not change.position.after(last):
        return Outcome.DUPLICATE if change.position == last else Outcome.STALE
    state.line_pos[line_id] = Pos.of(change.position)
    if change.op is Op.DELETE:
        state.lines.pop(line_id, None)
    else:
        state.lines[line_id] = merge(Line, state.lines.get(line_id), change)
    return None


def _evaluate(state: DealState, event: DealChange, refs, policy: Policy, now: dt.datetime) -> Decision:
    header = state.header
    won = header is not None and header.stage == policy.closed_won_stage and not header.deleted
    outputs: list[Output] = []
    if not won:
        if state.order is not None:
            outputs += _cancel(state, event, now)
            state.cancelled_orders = [*state.cancelled_orders, state.order.create_command_id][-CANCELLED_KEPT:]
            state.order = None
        state.close_pos = None
        state.failing_since = None
        outputs += _settle_exceptions(state, set(), event, now, resolution="SUPERSEDED", erp_too=True)
        state.parked = False
        return Decision(state, Outcome.APPLIED if event.change else Outcome.IGNORED, outputs)

    assert header is not None
    if state.close_pos is None:
        state.close_pos = state.header_pos
    failures, resolved = validate(header, state.lines, refs, policy, now.date())
    failures += resync.failures(state, refs)
    if failures:
        reasons = {f.reason for f in failures}
        outputs += _settle_exceptions(state, reasons, event, now, resolution="SUPERSEDED")
        if state.failing_since is None:
            state.failing_since = now
        if now < state.failing_since + policy.grace:
            state.parked = True  # re-checked when the grace period ends
            return Decision(state, Outcome.PENDING, outputs, sorted(reasons))
        outputs += _raise_exceptions(state, failures, event, now)
        state.parked = all(classify(r).parks for r in reasons)
        return Decision(state, Outcome.PARKED if state.parked else Outcome.REJECTED, outputs, sorted(reasons))

    assert resolved is not None
    state.failing_since = None
    was_parked = state.parked
    state.parked = False
    outputs += _settle_exceptions(
        state, set(), event, now, resolution="DEPENDENCY_ARRIVED" if was_parked else "SUPERSEDED"
    )
    terms = _terms(header, state.lines, resolved, now)
    if state.order is None:
        if state.cancelled_orders:
            state.erp = None  # a new order after a cancelled one: the ERP's side starts afresh
        outputs += _create(state, terms, event, now)
    elif state.order.digest != _digest(terms):
        changed = _changed(state.order, terms, header, state.lines)
        if changed:
            outputs += _amend(state, terms, changed, event, now)
        else:  # an order recorded before per-term hashes, unchanged: it takes them now
            state.order = state.order.model_copy(update={"digest": _digest(terms), "terms": _hashes(terms)})
    return Decision(state, Outcome.APPLIED, outputs)


def reissue_if_unaccepted(state: DealState, event: DealChange, refs, policy: Policy, now: dt.datetime) -> list[Output]:
    """Auto-heal: once the acceptance SLA has passed, send the same create (same command id) once more.

    The ERP upserts by command id, so a create that was lost on its way is repaired and one that
    was merely slow changes nothing. Only after the re-issued create's own SLA passes is the
    missing acceptance alerted."""
    order, erp = state.order, state.erp
    if not policy.slas.auto_heal or order is None or order.commanded_at_ms is None or state.header is None:
        return []
    if erp is not None and (erp.accepted_at_ms is not None or erp.rejected or not erp.healing(policy.slas)):
        return []
    now_ms = int(now.timestamp() * 1000)
    if now_ms < order.commanded_at_ms + int(policy.slas.accept.total_seconds() * 1000):
        return []
    erp = state.erp = erp or ErpView()
    outputs = rebuild_create(
        state, event, refs, policy, now, "reissued", "re-issued once: no acceptance within its SLA"
    )
    if outputs is None:
        erp.heal_skipped = True  # the deal no longer validates: alert rather than resend
        return []
    erp.reissued_at_ms = now_ms
    return outputs


def rebuild_create(state: DealState, event: DealChange, refs, policy: Policy, now: dt.datetime, why: str,
                   detail: str) -> list[Output] | None:  # fmt: skip
    """The deal's create again, same command id (the command and its audit record); None if it no
    longer validates. The order keeps when it was first commanded: its SLAs do not restart."""
    order = state.order
    if order is None or state.header is None:
        return None
    failures, resolved = validate(state.header, state.lines, refs, policy, now.date())
    if failures or resolved is None:
        return None
    commanded_at = order.commanded_at_ms
    outputs = _create(state, _terms(state.header, state.lines, resolved, now), event, now)
    state.order = state.order.model_copy(update={"commanded_at_ms": commanded_at})
    outputs[-1].value["audit_id"] += f":{why}"
    outputs[-1].value["detail"] = detail
    return outputs


# --- commands -------------------------------------------------------------------------


def _envelope(command_id: str, event: DealChange, now: dt.datetime) -> dict[str, Any]:
    change = event.change
    causation = [f"{change.table}/{change.row_id}@{change.position.label()}"] if change else []
    position = change.position.label() if change else None
    return command_envelope(command_id, event.opportunity_id, causation, event.lineage, position, now)


def _lines(header: Header, lines: dict[str, Line], resolved: Resolved) -> list[dict[str, Any]]:
    out = []
    for line_id, line in sorted(lines.items()):
        product = resolved.products[line_id]
        list_price = resolved.list_prices.get(line_id)
        discount = line.discount_percent
        if discount is None and list_price:
            discount = ((1 - (line.unit_price or 0) / list_price) * 100).quantize(Decimal("0.01"))
        out.append(
            {
                "line_id": line_id,
                "sku": product.sku or "",
                "erp_item_code": product.erp_item_code,
                "quantity": str(line.quantity),
                "unit_price": str((line.unit_price or Decimal(0)).quantize(Decimal("0.0001"))),
                "list_price": None if list_price is None else str(list_price.quantize(Decimal("0.0001"))),
                "discount_percent": str(max(discount or Decimal(0), Decimal(0))),
                "net_amount": str(line.total_price),
                "currency": header.currency,
                "tax_code": resolved.tax_code,
                "service_start_date": line.service_start_date.isoformat() if line.service_start_date else None,
                "service_end_date": line.service_end_date.isoformat() if line.service_end_date else None,
            }
        )
    return out


def _address(a) -> dict[str, Any]:
    return {"street": a.street, "city": a.city, "state": None, "postal_code": a.postal_code, "country": a.country}


def _command(
    key: str, command_id: str, body: dict[str, Any], action: OrderAction, event: DealChange, now
) -> SalesOrderCommand:
    value = {"envelope": _envelope(command_id, event, now), "command": body}
    return SalesOrderCommand(key, value, action=action)


def _terms(header: Header, lines: dict[str, Line], resolved: Resolved, now) -> dict[str, Any]:
    """Everything a create commits the ERP to (JSON-mode values): what a later amend compares against."""
    return {
        "account_id": header.account_id,
        "customer_number": resolved.account.erp_customer_number,
        "currency": header.currency,
        "amount": str(header.amount),
        "order_date": (header.close_date or now.date()).isoformat(),
        "lines": _lines(header, lines, resolved),
        "payment_terms": resolved.payment_terms,
        "billing_schedule": header.billing_schedule,
        "tax_code": resolved.tax_code,
        "tax_exempt": resolved.tax_exempt,
        "bill_to": _address(resolved.bill_to),
        "ship_to": _address(resolved.ship_to),
        "contract_term_months": header.contract_term_months,
    }


def _hash(value: Any) -> str:
    return hashlib.sha1(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def _digest(terms: dict[str, Any]) -> str:
    return _hash(terms)


def _hashes(terms: dict[str, Any]) -> dict[str, str]:
    return {name: _hash(value) for name, value in terms.items()}


def _changed(order: OrderRef, terms: dict[str, Any], header: Header, lines: dict[str, Line]) -> list[str]:
    """The terms that differ from what the ERP was last told. An order recorded before per-term
    hashes were kept has a digest of amount, currency and lines alone: only those can be compared."""
    if not order.terms:
        return list(_ALWAYS) if order.digest != _legacy_digest(header, lines) else []
    return [name for name, value in terms.items() if order.terms.get(name) != _hash(value)]


def _legacy_digest(header: Header, lines: dict[str, Line]) -> str:
    """The digest orders were recorded with before per-term hashes (state written by earlier releases)."""
    rows = [
        [i, ln.product_id, str(ln.quantity), str(ln.unit_price), str(ln.total_price)] for i, ln in sorted(lines.items())
    ]
    content = [str(header.amount), header.currency, rows]
    return hashlib.sha1(orjson.dumps(content)).hexdigest()


def _latest_position(state: DealState) -> str:
    """The newest source position applied to the deal (header or any line): what an amend or cancel
    decided now is derived from. A re-check decides on the same state, so it gets the same id."""
    positions = [p.position() for p in (state.header_pos, *state.line_pos.values()) if p is not None]
    latest = positions[0]
    for p in positions[1:]:
        if p.after(latest):
            latest = p
    return latest.label()


def _order_number(state: DealState) -> str | None:
    """The ERP's order number once it accepted the order (amends and cancels carry it)."""
    return state.erp.order_number if state.erp is not None else None


def _create(state, terms: dict[str, Any], event: DealChange, now) -> list[Output]:
    assert state.close_pos is not None
    command_id = f"{state.opportunity_id}:create:{state.close_pos.position().label()}"
    body = {"opportunity_id": state.opportunity_id, **terms, "quote_id": None}
    state.order = OrderRef(
        create_command_id=command_id,
        digest=_digest(terms),
        amount=Decimal(terms["amount"]),
        currency=terms["currency"],
        commanded_at_ms=int(now.timestamp() * 1000),
        terms=_hashes(terms),
    )
    command = _command(state.opportunity_id, command_id, body, OrderAction.CREATE, event, now)
    return [command, _audit(command_id, event, now)]


_ALWAYS = ("amount", "currency", "lines")  # an amend carries the complete lines and their total


def _amend(state, terms: dict[str, Any], changed: list[str], event: DealChange, now) -> list[Output]:
    """An amend of every term that changed; its id is unique per decision: the newest position the
    deal has applied, and the digest of what it tells the ERP."""
    digest = _digest(terms)
    command_id = f"{state.opportunity_id}:amend:{_latest_position(state)}:{digest[:8]}"
    body = {
        "opportunity_id": state.opportunity_id,
        "order_number": _order_number(state),
        **{name: terms[name] for name in _ALWAYS},
        **{name: terms[name] for name in changed if name not in _ALWAYS},
        "changed_fields": changed,
        "reason": f"changed after the order was created: {', '.join(changed)}",
    }
    state.order = state.order.model_copy(
        update={
            "digest": digest,
            "amount": Decimal(terms["amount"]),
            "currency": terms["currency"],
            "terms": _hashes(terms),
        }
    )
    command = _command(state.opportunity_id, command_id, body, OrderAction.AMEND, event, now)
    return [command, _audit(command_id, event, now)]


def _cancel(state: DealState, event: DealChange, now) -> list[Output]:
    header = state.header
    if header is None or header.deleted:
        reason = "DEAL_DELETED"
    elif header.stage == "CLOSED_LOST":
        reason = "DEAL_LOST"
    else:
        reason = "DEAL_REOPENED"
    command_id = f"{state.opportunity_id}:cancel:{_latest_position(state)}"
    body = {"opportunity_id": state.opportunity_id, "order_number": _order_number(state), "reason": reason}
    command = _command(state.opportunity_id, command_id, body, OrderAction.CANCEL, event, now)
    return [command, _audit(command_id, event, now)]


# --- exceptions and audit ----------------------------------------------------------------


def _exception_id(state: DealState, reason: ReasonCode) -> str:
    anchor = state.close_pos.position().label() if state.close_pos else "open"
    return f"{state.opportunity_id}:{reason}:{anchor}"


def _raise_exceptions(state: DealState, failures: list[Failure], event: DealChange, now) -> list[Output]:
    outputs: list[Output] = []
    header = state.header
    by_reason: dict[ReasonCode, list[str]] = {}
    for f in failures:
        by_reason.setdefault(f.reason, []).append(f.detail)
    for reason, details in sorted(by_reason.items()):
        if reason in state.open_exceptions:
            continue
        exception_id = _exception_id(state, reason)
        state.open_exceptions[reason] = exception_id
        c = classify(reason)
        lin = event.lineage
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
            "detail": mask_text("; ".join(details))[:2000],
            "lineage": lin.record(event.change.position.label() if event.change else None),
            "original_key": None,
            "original_value": None,
            "original_headers": {},
            "raised_at": now.isoformat(),
            "replay_of": None,
            "replay_count": 0,
            "status": "PARKED" if c.parks else "OPEN",
        }
        outputs.append(ExceptionRaised(state.opportunity_id, value))
    return outputs


def _settle_exceptions(
    state: DealState, still_failing: set, event: DealChange, now, resolution: str, erp_too: bool = False
) -> list[Output]:
    """Resolve open validation exceptions no longer failing (and ERP rejections once the deal has no order)."""
    outputs = []
    settled = {
        r for r in state.open_exceptions if erp_too or classify(ReasonCode(r)).type is not ExceptionType.ERP_REJECTION
    }
    for reason in sorted(settled - {str(r) for r in still_failing}):
        exception_id = state.open_exceptions.pop(reason)
        value = {
            "exception_id": exception_id,
            "resolved_at": now.isoformat(),
            "resolved_by": SERVICE_ACTOR,
            "resolution": resolution,
            "note": f"cleared by {event.change.position.label() if event.change else 'a dependency re-check'}",
        }
        outputs.append(ExceptionResolved(exception_id, value))
    return outputs


def _audit(subject_id: str, event: DealChange, now) -> Output:
    return command_audit(subject_id, event.opportunity_id, [event.lineage.coordinates], SalesOrderCommand, now)
