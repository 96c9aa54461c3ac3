"""Aggregate parity: contributions as facts, window sums, judgement with open/resolve."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from app.domain.feedback.lifecycle import ErpView
from app.domain.orders.deal import DealState, OrderRef
from app.domain.parity import aggregate
from app.domain.parity.aggregate import Bucket, Fact, Thresholds

HOUR = 3_600_000
T0 = 1_795_000_000_000 - 1_795_000_000_000 % HOUR  # a window boundary
TH = Thresholds(dt.timedelta(minutes=15), Decimal("0.02"), {"1h": HOUR})


def deal(amount="100.00", accepted: str | None = None, currency="EUR", accepted_currency=None) -> DealState:
    state = DealState(opportunity_id="opp-1")
    state.order = OrderRef(
        create_command_id="c", digest="d", amount=Decimal(amount), currency=currency, commanded_at_ms=T0 + 60_000
    )
    if accepted is not None:
        state.erp = ErpView(
            accepted_amount=Decimal(accepted), accepted_currency=accepted_currency or currency, accepted_at_ms=T0 + 1
        )
    return state


def test_a_deal_publishes_each_side_once_and_withdraws_what_it_no_longer_contributes():
    state = deal()
    assert aggregate.facts(state) == [Fact("opp-1", "crm", "EUR", T0 + 60_000, Decimal("100.00"))]
    assert aggregate.facts(state) == []  # nothing changed: nothing to publish
    state.erp = ErpView(accepted_amount=Decimal("90.00"), accepted_currency="EUR", accepted_at_ms=T0 + 1)
    assert aggregate.facts(state) == [Fact("opp-1", "erp", "EUR", T0 + 60_000, Decimal("90.00"))]
    state.order = None  # cancelled
    assert aggregate.facts(state) == [
        Fact("opp-1", "crm", "EUR", T0 + 60_000, None),
        Fact("opp-1", "erp", "EUR", T0 + 60_000, None),
    ]


def test_an_acceptance_in_another_currency_counts_as_nothing_accepted():
    assert aggregate.contributions(deal(accepted="100.00", accepted_currency="USD"))["erp"] == (
        "EUR",
        T0 + 60_000,
        Decimal(0),
    )


def test_folding_moves_sums_from_the_previous_contribution_to_the_new_one():
    buckets: dict[str, Bucket] = {}
    first = Fact("opp-1", "crm", "EUR", T0 + 5, Decimal("100"))
    aggregate.fold(None, first, buckets, TH.windows)
    amended = Fact("opp-1", "crm", "EUR", T0 + 5, Decimal("120"))
    aggregate.fold(first, amended, buckets, TH.windows)
    key = aggregate.bucket_key("EUR", "1h", T0)
    assert (buckets[key].crm_count, buckets[key].crm_amount) == (1, Decimal("120"))
    aggregate.fold(amended, Fact("opp-1", "crm", "EUR", T0 + 5, None), buckets, TH.windows)
    assert (buckets[key].crm_count, buckets[key].crm_amount) == (0, Decimal("0"))


def test_a_window_is_judged_after_it_ends_and_settles_then_opens_and_resolves_its_alert():
    key = aggregate.bucket_key("EUR", "1h", T0)
    bucket = Bucket(crm_count=2, crm_amount=Decimal("200"), erp_count=1, erp_amount=Decimal("100"))
    assert not aggregate.due(key, T0 + HOUR + 14 * 60_000, TH)
    assert aggregate.due(key, T0 + HOUR + 15 * 60_000, TH)
    now = dt.datetime.fromtimestamp((T0 + 2 * HOUR) / 1000, dt.UTC)
    opened = aggregate.judge(key, bucket, now, TH)
    alert = opened[0].value
    assert (alert["kind"], alert["state"], alert["amount_at_risk"], alert["currency"]) == (
        "AGGREGATE_PARITY",
        "OPEN",
        "100.00",
        "EUR",
    )
    assert bucket.judged and aggregate.judge(key, bucket, now, TH) == []  # still diverging: no second alert
    aggregate.fold(None, Fact("opp-2", "erp", "EUR", T0 + 9, Decimal("100")), {key: bucket}, TH.windows)
    assert not bucket.judged  # a late fact re-opens judgement
    resolved = aggregate.judge(key, bucket, now, TH)[0].value
    assert (resolved["alert_id"], resolved["state"]) == (alert["alert_id"], "RESOLVED")
    assert bucket.alert_id is None


def test_window_specs_parse_and_bad_ones_are_refused():
    assert aggregate.parse_windows("1h=3600, 1d=86400") == {"1h": 3_600_000, "1d": 86_400_000}
    with pytest.raises(ValueError, match="expected <name>=<seconds>"):
        aggregate.parse_windows("1h")
