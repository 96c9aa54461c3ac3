"""Renewals without Kafka: the request before a term ends, RENEWAL_MISSING after it, moves and notices."""

from __future__ import annotations

import datetime as dt

import pytest

from app.cdc import messages
from app.domain.changes import Lineage
from app.domain.orders import renewals
from app.domain.orders.decide import Outcome, decide, on_renewal
from app.domain.orders.renewals import RenewalSeen, add_months
from app.domain.orders.validation import Policy
from app.domain.outputs import RenewalNotice
from app.engine.routes import record, route
from app.flows import deals as deal_flow
from tests.support.deals import NOW, Source, header, references
from tests.support.erp import OPP, Deal, alerts

POLICY = Policy()  # renewal lead: 90 days
LINEAGE = Lineage("sync.deal-changes", 0, 7, None, None)


def requests(decision) -> list[dict]:
    return [record(o) for o in decision.outputs if route(o).topic == "crm.commands.renewal"]


def missing(decision) -> list[tuple[str, str]]:
    return [(a["alert_id"], a["state"]) for a in alerts(decision) if a["kind"] == "RENEWAL_MISSING"]


def told(deal: Deal, renewal: str, stage: str, now: dt.datetime):
    decision = on_renewal(deal.state, RenewalSeen(OPP, renewal, stage, LINEAGE), deal.policy, now)
    return deal._record(decision, check=True)


@pytest.mark.parametrize(
    ("day", "months", "end"),
    [
        (dt.date(2026, 1, 31), 1, dt.date(2026, 2, 28)),
        (dt.date(2027, 12, 31), 2, dt.date(2028, 2, 29)),
        (dt.date(2026, 11, 27), 12, dt.date(2027, 11, 27)),
        (dt.date(2026, 11, 27), 36, dt.date(2029, 11, 27)),
    ],
)
def test_a_term_ends_its_months_later_on_the_same_day_or_the_months_last(day, months, end):
    assert add_months(day, months) == end


def test_the_renewal_is_requested_once_the_lead_time_before_the_term_ends():
    deal = Deal(POLICY)  # closed 2026-11-27, 12 months: ends 2027-11-27, request due 2027-08-29
    assert deal.state.renewal.term_end == dt.date(2027, 11, 27) and requests(deal.creation) == []
    due = renewals.due_at(deal.state, POLICY)
    assert due == dt.datetime(2027, 8, 29, tzinfo=dt.UTC)
    assert requests(deal.recheck(due - dt.timedelta(minutes=1))) == []
    [request] = requests(deal.recheck(due))
    assert request["envelope"]["command_id"] == f"{OPP}:renewal:2027-11-27"
    assert request["renewal_opportunity_id"] == f"{OPP}-renewal-20271127"
    assert (request["term_start"], request["term_end"], request["contract_term_months"]) == (
        "2026-11-27",
        "2027-11-27",
        12,
    )
    assert (request["amount"], request["currency"], request["account_id"]) == ("250.00", "EUR", "acc-1")
    assert requests(deal.recheck(due + dt.timedelta(days=1))) == []  # once per contract and term
    assert renewals.due_at(deal.state, POLICY) == dt.datetime(2027, 11, 27, tzinfo=dt.UTC)  # then: the term end


def test_a_term_that_ended_without_a_renewal_is_drift_until_one_opens():
    close = NOW.date() - dt.timedelta(days=40)
    deal = Deal(POLICY, close_date=close, contract_term_months=1)
    assert requests(deal.creation) and missing(deal.creation) == [(f"{OPP}:renewal:missing:1", "OPEN")]
    [alert] = [a for a in alerts(deal.creation) if a["kind"] == "RENEWAL_MISSING"]
    assert alert["suggested_owner"] == "account-management" and alert["amount_at_risk"] == "250.00"
    opened = told(deal, "opp-9", "PROSPECTING", NOW)
    assert missing(opened) == [(f"{OPP}:renewal:missing:1", "RESOLVED")]
    assert told(deal, "opp-9", "PROSPECTING", NOW).outcome is Outcome.DUPLICATE
    assert missing(told(deal, "opp-9", "CLOSED_LOST", NOW)) == [(f"{OPP}:renewal:missing:2", "OPEN")]
    assert missing(told(deal, "opp-10", "CLOSED_WON", NOW)) == [(f"{OPP}:renewal:missing:2", "RESOLVED")]


def test_an_amended_term_moves_the_expectation_and_is_asked_for_again():
    close = NOW.date() - dt.timedelta(days=40)
    deal = Deal(POLICY, close_date=close, contract_term_months=1)
    [first] = requests(deal.creation)
    longer = deal.header(NOW, close_date=close, contract_term_months=2)  # ends in about 20 days
    assert missing(longer) == [(f"{OPP}:renewal:missing:1", "RESOLVED")]
    [second] = requests(longer)  # inside the lead time of the new term: asked for at once
    assert second["envelope"]["command_id"] != first["envelope"]["command_id"]
    assert second["term_end"] == add_months(close, 2).isoformat()


def test_a_cancelled_order_takes_the_expectation_and_its_alert_away():
    close = NOW.date() - dt.timedelta(days=40)
    deal = Deal(POLICY, close_date=close, contract_term_months=1)
    lost = deal.header(NOW, stage="CLOSED_LOST", close_date=close, contract_term_months=1)
    assert deal.state.renewal is None and missing(lost) == [(f"{OPP}:renewal:missing:1", "RESOLVED")]


def test_a_deal_without_a_term_expects_no_renewal():
    deal = Deal(POLICY, contract_term_months=None)
    assert deal.state.renewal is None and renewals.due_at(deal.state, POLICY) is None


def test_a_renewal_opportunity_tells_the_deal_it_renews_when_its_stage_changes_even_when_the_service_made_it():
    src, refs = Source(), references()
    state = None
    outs = []
    for stage, by in (("PROSPECTING", "005-integration"), ("PROSPECTING", "005-sales"), ("CLOSED_LOST", "005-sales")):
        fields = header(stage=stage, renewal_of="opp-1", last_modified_by=by)
        event = src.event("opp-2", src.change("opportunity", "opp-2", fields))
        decision = decide(state, event, refs, POLICY, NOW)
        state = decision.state
        outs.append([o for o in decision.outputs if isinstance(o, RenewalNotice)])
    assert [len(o) for o in outs] == [1, 0, 1]  # the first (loop-suppressed too), then only a new stage
    notice = outs[2][0]
    assert (notice.key, route(notice).topic) == ("opp-1", "sync.deal-changes")
    parsed = messages.parse_deal_change(messages.dumps(notice.value), "sync.deal-changes", "d/0/1")
    assert parsed == RenewalSeen("opp-1", "opp-2", "CLOSED_LOST", parsed.lineage)


def test_a_notice_for_a_deal_the_service_does_not_hold_writes_nothing():
    tables = {name: {} for name in deal_flow.TABLES}
    ctx = deal_flow.Context(references(), POLICY, NOW)
    step = deal_flow.step(tables, b"opp-gone", RenewalSeen("opp-gone", "opp-2", "PROSPECTING", LINEAGE), "d/0/1", ctx)
    assert step.writes == [] and step.outputs == []


@pytest.mark.parametrize("close", [dt.date(9999, 12, 31), dt.date(1, 1, 1)])
def test_a_close_date_that_fails_validation_does_not_move_the_renewal_of_the_ordered_term(close):
    """Found by the property test: an ordered deal edited to a close date at the end of the calendar
    raised OverflowError in the deal step; and a typo must not ask the CRM to renew a bogus term."""
    deal = Deal(POLICY)
    edited = deal.header(NOW, close_date=close)
    assert edited.outcome is Outcome.REJECTED and requests(edited) == []
    assert deal.state.renewal.term_end == dt.date(2027, 11, 27)


def test_a_term_outside_the_calendar_expects_no_renewal():
    state = Deal(POLICY).state
    state.header = state.header.model_copy(update={"close_date": dt.date(9999, 12, 31)})
    renewals.expect(state, POLICY)
    assert state.renewal is None


def test_a_negative_term_expects_no_renewal():
    assert Deal(POLICY, contract_term_months=-3).state.renewal is None
