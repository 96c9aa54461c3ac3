"""Lifecycle KPIs read off decisions: cycle times, billing accuracy, closed deals (no Kafka)."""

from __future__ import annotations

from app.domain.feedback.kpis import BillingCheck, Cycle, CycleTime, DealClosed
from app.domain.feedback.lifecycle import ErpKind
from tests.support.erp import Deal, at, ms


def cycles(decision) -> dict[Cycle, float]:
    return {m.cycle: m.seconds for m in decision.measures if isinstance(m, CycleTime)}


def test_a_close_counts_once_and_an_edit_after_it_does_not():
    deal = Deal()
    assert deal.creation.measures == [DealClosed()]
    assert deal.header(at(minutes=1), name="renamed").measures == []


def test_a_reopened_deal_won_again_is_a_second_close():
    deal = Deal()
    assert deal.header(at(minutes=1), stage="NEGOTIATION").measures == []
    assert deal.header(at(minutes=2)).measures == [DealClosed()]


def test_each_cycle_is_measured_once_when_its_step_is_first_reached():
    deal = Deal()
    close_ms = deal.state.close_pos.ts_ms
    accepted = deal.erp(ErpKind.ACCEPTED, at(minutes=5))
    assert cycles(accepted) == {Cycle.HANDOFF: (ms(at(minutes=5)) - close_ms) / 1000}
    assert cycles(deal.erp(ErpKind.ACCEPTED, at(minutes=6), event_id="again")) == {}  # a re-confirmation
    deal.erp(ErpKind.SHIPPED, at(hours=1))
    invoiced = deal.erp(ErpKind.INVOICED, at(hours=2))
    assert cycles(invoiced) == {Cycle.CLOSE_TO_INVOICE: (ms(at(hours=2)) - close_ms) / 1000}
    assert [m for m in invoiced.measures if isinstance(m, BillingCheck)] == [BillingCheck(True)]
    partly = deal.erp(ErpKind.PAID, at(days=3), amount="100.00")
    assert cycles(partly) == {}  # not paid in full yet
    rest = deal.erp(ErpKind.PAID, at(days=5), amount="150.00")
    assert cycles(rest) == {Cycle.INVOICE_TO_PAID: 5 * 86400 - 2 * 3600}


def test_an_invoice_off_the_accepted_amount_or_currency_is_inaccurate_billing():
    off = Deal(billing_schedule="UPFRONT")
    off.erp(ErpKind.ACCEPTED, at(minutes=5))
    assert BillingCheck(False) in off.erp(ErpKind.INVOICED, at(hours=2), amount="260.00").measures
    other = Deal(billing_schedule="UPFRONT")
    other.erp(ErpKind.ACCEPTED, at(minutes=5))
    assert BillingCheck(False) in other.erp(ErpKind.INVOICED, at(hours=2), currency="USD").measures


def test_instalment_billing_is_not_judged_by_its_first_invoice():
    deal = Deal(billing_schedule="QUARTERLY")
    deal.erp(ErpKind.ACCEPTED, at(minutes=5))
    invoiced = deal.erp(ErpKind.INVOICED, at(hours=2), amount="62.50")
    assert not [m for m in invoiced.measures if isinstance(m, BillingCheck)]
    assert Cycle.CLOSE_TO_INVOICE in cycles(invoiced)


def test_a_duplicate_event_measures_nothing():
    deal = Deal()
    deal.erp(ErpKind.ACCEPTED, at(minutes=5), event_id="acc")
    assert deal.feed(deal.event(ErpKind.ACCEPTED, at(minutes=5), event_id="acc"), at(minutes=6)).measures == []
