"""Escalation thresholds across currencies: amounts converted through the rate table, read again on change."""

from __future__ import annotations

import os
from decimal import Decimal

from app.domain.exceptions.escalation import Route, alert_slas, load, route_for
from app.domain.fx import RateFile, Rates
from app.settings import REPO_ROOT

RATES = Rates("EUR", {"USD": Decimal("0.95"), "JPY": Decimal("0.0063"), "GBP": Decimal("1.19")})
BIG = Route("big", {"min_amount_at_risk": 50000}, "revops", "#revops", "PAGE")


def alert(amount: str, currency: str | None) -> dict:
    return {"kind": "AMOUNT_MISMATCH", "severity": "HIGH", "amount_at_risk": amount, "currency": currency}


def test_amounts_are_compared_in_the_base_currency():
    assert RATES.to_base(Decimal("100"), "USD") == Decimal("95.00") and RATES.to_base(Decimal("7"), "EUR") == 7
    assert not BIG.matches(alert("60000", "JPY"), RATES)  # 378 EUR: no page at night for it
    assert BIG.matches(alert("45000", "GBP"), RATES)  # 53 550 EUR
    assert not BIG.matches(alert("49000", "EUR"), RATES)
    assert BIG.matches(alert("60000", "JPY"))  # without a table: the old comparison, as is


def test_an_amount_in_a_currency_the_table_lacks_is_compared_as_it_is():
    assert BIG.matches(alert("50000", "XAU"), RATES) and not BIG.matches(alert("49999", "XAU"), RATES)


def test_the_shipped_rules_route_big_drift_to_revops_and_know_every_severity():
    routes = load(REPO_ROOT / "app" / "rules" / "escalation.toml")
    assert route_for(routes, {**alert("60000", "USD"), "suggested_owner": "deal-desk"}, RATES).name == "big-drift"
    small = route_for(routes, {**alert("600", "USD"), "suggested_owner": "deal-desk"}, RATES)
    assert (small.name, small.team) == ("owning-team", "deal-desk")
    assert alert_slas(REPO_ROOT / "app" / "rules" / "escalation.toml") == {
        "CRITICAL": 60,
        "HIGH": 240,
        "MEDIUM": 1440,
        "LOW": 4320,
    }


def test_the_rate_file_is_read_again_when_it_changes_and_a_broken_one_keeps_the_last_good_table(tmp_path):
    path = tmp_path / "fx.toml"
    path.write_text('base = "EUR"\n[rates]\nUSD = 0.9\n')
    rates = RateFile(path)
    assert rates.current().rates == {"USD": Decimal("0.9")}
    path.write_text('base = "EUR"\nas_of = "2026-12-07"\n[rates]\nUSD = 0.95\nGBP = 1.2\n')
    os.utime(path, ns=(1, 10**18))  # a new mtime even within the file system's timestamp resolution
    assert rates.current().rates == {"USD": Decimal("0.95"), "GBP": Decimal("1.2")}
    path.write_text('base = "EUR"\n[rates]\nUSD = -1\n')
    os.utime(path, ns=(1, 2 * 10**18))
    assert rates.current().rates == {"USD": Decimal("0.95"), "GBP": Decimal("1.2")}
