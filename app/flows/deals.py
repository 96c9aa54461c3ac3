"""The deal flow: one opportunity's CRM changes, re-checks and ERP events → its state and outputs.

The rules are ``app.domain.orders.decide.decide`` and ``app.domain.feedback.fold.on_erp_event``; this step
loads the deal, runs the rule and derives the rows that index it: what a parked deal waits for
(``parked-deals``, read by the re-check timer), when its next ERP SLA or the end of its retention
falls due (``sla-deadlines``, read by the sweep) and its open drift alerts. A retired deal's rows
are tombstoned (app/domain/orders/retention.py).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from app.domain.feedback.fold import on_erp_event
from app.domain.feedback.lifecycle import ErpEvent
from app.domain.orders import renewals
from app.domain.orders.deal import DealState
from app.domain.orders.decide import DealChange, Decision, Outcome, decide, on_gap, on_renewal, retention, waiting_for
from app.domain.orders.renewals import RenewalSeen
from app.domain.orders.resync import SourceGap
from app.domain.orders.validation import Policy
from app.domain.parity.rules import next_check_ms
from app.flows.alerts import OPEN_ALERTS, alert_writes
from app.flows.step import Step, Tables, Write, put

DEALS, PARKED, DEADLINES = "deals", "parked-deals", "sla-deadlines"
TABLES = (DEALS, PARKED, DEADLINES, OPEN_ALERTS)


@dataclass(frozen=True, slots=True)
class Context:
    references: Any  # app.engine.reference_store.ReferenceStore, or a test's
    policy: Policy
    now: dt.datetime


def step(
    tables: Tables, key: bytes, item: DealChange | ErpEvent | RenewalSeen | SourceGap, delivery: str, ctx: Context
) -> Step:
    """``delivery``: where the item was read (topic/partition/offset). ``Step.info`` is the ``Decision``."""
    raw = tables[DEALS].get(key)
    state = DealState.model_validate_json(raw) if raw else None
    decision: Decision
    if isinstance(item, RenewalSeen):
        decision = on_renewal(state, item, ctx.policy, ctx.now)
        if state is None:  # a deal the service does not hold: nothing to keep
            return Step([], [], decision)
    elif isinstance(item, ErpEvent):
        decision = on_erp_event(state, item, delivery, ctx.policy, ctx.now, ctx.references)
    elif isinstance(item, SourceGap):
        decision = on_gap(state, item, ctx.references, ctx.policy, ctx.now)
    else:
        decision = decide(state, item, ctx.references, ctx.policy, ctx.now)
    new = decision.state
    writes: list[Write]
    if decision.outcome is Outcome.RETIRED:
        writes = [Write(table, key, None) for table in (DEALS, PARKED, DEADLINES) if key in tables[table]]
        return Step(writes, list(decision.outputs), decision)
    writes = put(tables, DEALS, key, new.model_dump_json(exclude_defaults=True).encode())  # defaults return on read
    if new.parked:
        writes += put(tables, PARKED, key, waiting_for(new, ctx.policy.grace))
    else:
        writes += put(tables, PARKED, key, None)
    due = _next_due_ms(new, ctx)
    writes += put(tables, DEADLINES, key, None if due is None else str(due).encode())
    writes += alert_writes(decision.outputs)
    return Step(writes, list(decision.outputs), decision)


def _next_due_ms(state: DealState, ctx: Context) -> int | None:
    """When the deal must be looked at again without a new event: its next ERP SLA, its renewal's
    request or term end, or the end of its retention once settled (the sweep turns each into a
    re-check)."""
    dues = [next_check_ms(state, int(ctx.now.timestamp() * 1000), ctx.policy.slas)]
    forget = retention.forget_at(state, ctx.policy)
    dues.append(None if forget is None else int(forget.timestamp() * 1000))
    renewal = renewals.due_at(state, ctx.policy)
    dues.append(None if renewal is None else int(renewal.timestamp() * 1000))
    found = [d for d in dues if d is not None]
    return min(found) if found else None
