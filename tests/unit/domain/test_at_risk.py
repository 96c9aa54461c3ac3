"""Revenue at risk counts each deal once per currency (review item 7: a 250.00 deal with two open
reasons showed 500.00, and the panel added exceptions and drift alerts on top of each other)."""

from __future__ import annotations

from decimal import Decimal

from app.domain.parity.at_risk import AtRisk, revenue_at_risk


def test_a_deal_at_risk_for_several_reasons_counts_once_per_source_and_once_in_total():
    items = [
        AtRisk("exceptions", "opp-1", "EUR", Decimal("250.00")),
        AtRisk("exceptions", "opp-1", "EUR", Decimal("250.00")),  # a second open reason of the same deal
        AtRisk("drift_alerts", "opp-1", "EUR", Decimal("250.00")),
        AtRisk("drift_alerts", "opp-1", "EUR", Decimal("10.00")),  # an amount mismatch of the same deal
        AtRisk("exceptions", "opp-2", "EUR", Decimal("100.00")),
        AtRisk("drift_alerts", "opp-3", "USD", Decimal("40.00")),
        AtRisk("exceptions", "dlq:crm.public.opportunity/0/7", "EUR", Decimal("5.00")),  # no deal: its own
    ]
    assert revenue_at_risk(items) == {
        ("exceptions", "EUR"): Decimal("355.00"),
        ("drift_alerts", "EUR"): Decimal("250.00"),
        ("drift_alerts", "USD"): Decimal("40.00"),
        ("total", "EUR"): Decimal("355.00"),
        ("total", "USD"): Decimal("40.00"),
    }


def test_nothing_at_risk_is_nothing():
    assert revenue_at_risk([]) == {}
