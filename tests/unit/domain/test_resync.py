"""Holes in a deal's state from a source that loses changes (Salesforce): partial updates, gap events,
overflows; the deal waits with AWAITING_RESYNC and completes on a newer full image
(app/domain/orders/resync.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt

from app.domain.changes import Lineage, Op, Position, RowChange
from app.domain.errors import ReasonCode
from app.domain.orders.decide import DealChange, Outcome, decide, on_gap
from app.domain.orders.resync import SourceGap
from app.domain.orders.validation import Policy
from app.domain.outputs import ExceptionRaised, ExceptionResolved, ResyncRequest, SalesOrderCommand
from tests.support.deals import NOW, header, line, references

POLICY = Policy()
LATER = NOW + dt.timedelta(seconds=1)
LINEAGE = Lineage("salesforce.OpportunityChangeEvent", 0, 1, 9, 1_796_000_000_000)


class Salesforce:
    """Changes in Salesforce's commit order: a commit time, a commit number, a sequence number."""

    def __init__(self) -> None:
        self.ts, self.commit = 1_796_000_000_000, 10_000

    def position(self) -> Position:
        self.ts += 10
        self.commit += 1
        return Position(None, self.ts, self.commit, 1)

    def change(self, table, rid, fields, full=True, op=Op.UPSERT, by_integration=False) -> RowChange:
        unavailable = (
            frozenset() if full else frozenset(set(header()) - set(fields)) if table == "opportunity" else frozenset()
        )
        return RowChange(table, op, rid, fields, unavailable, self.position(), False, full, by_integration)

    def gap(self, opp: str, rid: str) -> SourceGap:
        return SourceGap(opp, rid, self.position(), LINEAGE, "sync.deal-changes/0/1")


def event(opp, change) -> DealChange:
    return DealChange(opp, change, LINEAGE, "sync.deal-changes/0/1")


def run(state, items, refs=None, now=NOW):
    refs = refs or references()
    decisions = []
    for item in items:
        d = (
            on_gap(state, item, refs, POLICY, now)
            if isinstance(item, SourceGap)
            else decide(state, item, refs, POLICY, now)
        )
        state = d.state
        decisions.append(d)
    return state, decisions


def outputs(decisions, kind):
    return [o for d in decisions for o in d.outputs if isinstance(o, kind)]


def open_deal(sf: Salesforce, opp="opp-1"):
    """A deal created whole (Salesforce creates), still open."""
    return [
        event(opp, sf.change("opportunity", opp, header(stage="PROSPECTING"))),
        event(opp, sf.change("opportunity_line_item", "l1", line(opp, "prod-a", "2", "100"))),
        event(opp, sf.change("opportunity_line_item", "l2", line(opp, "prod-b", "1", "50"))),
    ]


def test_a_partial_update_that_closes_the_deal_orders_it_from_the_merged_state():
    sf = Salesforce()
    state, decisions = run(
        None, [*open_deal(sf), event("opp-1", sf.change("opportunity", "opp-1", {"stage": "CLOSED_WON"}, full=False))]
    )
    [create] = outputs(decisions, SalesOrderCommand)
    assert create.value["command"]["amount"] == "250.00" and create.value["command"]["customer_number"] == "C-1001"
    assert state.full_pos == {"opp-1": state.full_pos["opp-1"]} and not state.resync  # last full image remembered


def test_a_gap_in_the_opportunity_holds_the_deal_until_a_newer_full_image_arrives():
    sf = Salesforce()
    state, _ = run(None, open_deal(sf))
    won = event("opp-1", sf.change("opportunity", "opp-1", {"stage": "CLOSED_WON"}, full=False))
    state, decisions = run(state, [sf.gap("opp-1", "opp-1"), won])
    assert not outputs(decisions, SalesOrderCommand)
    [raised] = outputs(decisions, ExceptionRaised)
    assert raised.value["reason_code"] == ReasonCode.AWAITING_RESYNC and "opp-1" in raised.value["detail"]
    assert state.parked and decisions[-1].outcome is Outcome.PARKED
    resynced = event("opp-1", sf.change("opportunity", "opp-1", header()))  # the resync's full image
    state, decisions = run(state, [resynced], now=LATER)
    assert len(outputs(decisions, SalesOrderCommand)) == 1 and not state.resync and not state.parked
    [resolved] = outputs(decisions, ExceptionResolved)
    assert resolved.value["exception_id"] == raised.value["exception_id"]


def test_a_gap_older_than_the_full_image_held_or_redelivered_opens_nothing():
    sf = Salesforce()
    stale = sf.gap("opp-1", "opp-1")  # lost before the create below
    state, _ = run(None, open_deal(sf))
    state, decisions = run(state, [stale])
    assert decisions[-1].outcome is Outcome.DUPLICATE and not state.resync
    fresh = sf.gap("opp-1", "l1")
    state, _ = run(state, [fresh])
    state, decisions = run(state, [fresh])  # redelivered
    assert decisions[-1].outcome is Outcome.DUPLICATE and list(state.resync) == ["l1"]


def test_an_overflow_holds_every_record_not_seen_whole_since():
    sf = Salesforce()
    state, _ = run(None, open_deal(sf))
    refs = references()
    refs.barriers["opportunity_line_item"] = sf.position()  # an overflow of line items
    won = event("opp-1", sf.change("opportunity", "opp-1", header()))
    state, decisions = run(state, [won], refs, now=LATER)
    assert not outputs(decisions, SalesOrderCommand)
    assert {r.value["reason_code"] for r in outputs(decisions, ExceptionRaised)} == {ReasonCode.AWAITING_RESYNC}
    state, decisions = run(
        state,
        [event("opp-1", sf.change("opportunity_line_item", "l1", line("opp-1", "prod-a", "2", "100")))],
        refs,
        now=LATER,
    )
    assert not outputs(decisions, SalesOrderCommand)  # l2 is still older than the overflow
    state, decisions = run(
        state,
        [event("opp-1", sf.change("opportunity_line_item", "l2", line("opp-1", "prod-b", "1", "50")))],
        refs,
        now=LATER,
    )
    assert len(outputs(decisions, SalesOrderCommand)) == 1


def test_a_partial_update_of_a_record_never_seen_whole_asks_for_it_once():
    sf = Salesforce()
    partial = event("opp-9", sf.change("opportunity", "opp-9", {"stage": "CLOSED_WON"}, full=False))
    state, decisions = run(None, [partial])
    [request] = outputs(decisions, ResyncRequest)
    assert request.value["entity"] == "Opportunity" and request.value["record_ids"] == ["opp-9"]
    assert request.value["reason"] == "PARTIAL_WITHOUT_IMAGE" and list(state.resync) == ["opp-9"]
    again = event("opp-9", sf.change("opportunity", "opp-9", {"name": "x"}, full=False))
    state, decisions = run(state, [again])
    assert not outputs(decisions, ResyncRequest)


def test_changes_made_by_the_integrations_own_client_create_nothing():
    sf = Salesforce()
    state, _ = run(None, open_deal(sf))
    own = dataclasses.replace(
        sf.change("opportunity", "opp-1", {"stage": "CLOSED_WON"}, full=False), by_integration=True
    )
    state, decisions = run(state, [event("opp-1", own)])
    assert decisions[-1].outcome is Outcome.LOOP_SUPPRESSED and not outputs(decisions, SalesOrderCommand)


def test_the_deal_api_shows_the_hole_and_the_dry_run_says_it_cannot_become_an_order():
    from app.readmodels.decisions import check, deal_status

    sf = Salesforce()
    state, _ = run(None, [*open_deal(sf), sf.gap("opp-1", "l2")])
    assert deal_status(state).awaiting_resync == ["l2"]
    state.header = state.header.model_copy(update={"stage": "CLOSED_WON"})
    verdict = check(state, references(), POLICY, NOW)
    assert not verdict.can_become_order
    assert [r.reason_code for r in verdict.reasons] == ["AWAITING_RESYNC"] and verdict.reasons[0].waits_for_dependency
