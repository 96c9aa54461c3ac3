"""Completeness rules of a closed-won deal: each rule alone, with the exact reason codes it yields."""

from __future__ import annotations

import datetime as dt
import inspect
import re
from decimal import Decimal

import pytest

from app.domain.errors import ReasonCode as R
from app.domain.exceptions.taxonomy import TAXONOMY, classify
from app.domain.orders import validation
from app.domain.orders.deal import Address, Header, Line
from app.domain.orders.validation import Policy, Resolved, validate
from tests.support.deals import ADDRESS, FakeReferences, header, line, references

POLICY = Policy()
INCOMPLETE = {"street": "Hauptstr. 1", "city": None, "postal_code": "10115", "country": "DE"}


def valid_lines() -> dict[str, dict]:
    """Two lines that sum to the header's default amount of 250.00."""
    return {"l1": line("opp-1", "prod-a", "2", "100"), "l2": line("opp-1", "prod-b", "1", "50")}


def check(lines: dict[str, dict] | None = None, refs: FakeReferences | None = None, **header_overrides):
    lines = valid_lines() if lines is None else lines
    refs = references() if refs is None else refs
    return validate(Header(**header(**header_overrides)), {k: Line(**v) for k, v in lines.items()}, refs, POLICY)


def reasons(lines: dict[str, dict] | None = None, refs: FakeReferences | None = None, **header_overrides) -> set[R]:
    failures, resolved = check(lines, refs, **header_overrides)
    assert (resolved is None) == bool(failures)
    return {f.reason for f in failures}


def with_account(**update) -> FakeReferences:
    refs = references()
    refs.accounts["acc-1"] = refs.accounts["acc-1"].model_copy(update=update)
    return refs


# --- the valid deal ---------------------------------------------------------------


def test_a_complete_deal_passes_every_rule_and_resolves_what_the_order_needs():
    failures, resolved = check()
    assert failures == []
    assert isinstance(resolved, Resolved)
    assert resolved.account.erp_customer_number == "C-1001"
    assert {k: p.erp_item_code for k, p in resolved.products.items()} == {"l1": "ITEM-A", "l2": "ITEM-B"}
    assert resolved.list_prices == {"l1": Decimal("100.00"), "l2": Decimal("50.00")}
    assert resolved.bill_to == Address(**ADDRESS) and resolved.ship_to == Address(**ADDRESS)
    assert resolved.payment_terms == "NET30" and resolved.tax_code == "DE-STD" and resolved.tax_exempt is False


# --- currency ---------------------------------------------------------------------


def test_a_deal_without_a_currency_is_missing_its_currency():
    assert reasons(currency=None) == {R.MISSING_CURRENCY}


def test_a_currency_the_erp_does_not_book_is_unsupported():
    refs = references()
    refs.prices |= {("prod-a", "BRL"): Decimal("500.00"), ("prod-b", "BRL"): Decimal("250.00")}
    lines = {"l1": line("opp-1", "prod-a", "2", "500"), "l2": line("opp-1", "prod-b", "1", "250")}
    assert reasons(lines, refs, currency="BRL", amount="1250.00") == {R.UNSUPPORTED_CURRENCY}


def test_an_unsupported_currency_does_not_also_wait_for_a_price_book_entry():
    assert reasons(currency="BRL") == {R.UNSUPPORTED_CURRENCY}


# --- account and customer link ----------------------------------------------------


@pytest.mark.parametrize("account_id", ["acc-404", None], ids=["not-synced", "none"])
def test_an_account_that_has_not_been_synced_is_unknown(account_id):
    assert reasons(account_id=account_id) == {R.UNKNOWN_ACCOUNT}


def test_an_account_without_an_erp_customer_number_is_not_linked():
    assert reasons(refs=references(linked=False)) == {R.CUSTOMER_NOT_LINKED}


# --- lines ------------------------------------------------------------------------


def test_a_deal_without_lines_has_no_lines():
    assert reasons(lines={}) == {R.NO_LINES}


@pytest.mark.parametrize("qty", ["0", "-1"], ids=["zero", "negative"])
def test_a_line_with_a_quantity_that_is_not_positive_has_an_invalid_quantity(qty):
    lines = {**valid_lines(), "l1": line("opp-1", "prod-a", qty, "100")}
    amount = Decimal(qty) * 100 + 50
    assert reasons(lines, amount=str(amount)) == {R.INVALID_QUANTITY}


def test_a_line_without_a_quantity_has_an_invalid_quantity():
    lines = {**valid_lines(), "l1": line("opp-1", "prod-a", "2", "100", quantity=None)}
    assert reasons(lines) == {R.INVALID_QUANTITY}


def test_a_line_for_a_product_that_has_not_been_synced_has_an_unknown_product():
    lines = {**valid_lines(), "l2": line("opp-1", "prod-404", "1", "50")}
    assert reasons(lines) == {R.UNKNOWN_PRODUCT}


def test_a_product_without_an_erp_item_code_is_not_mapped():
    refs = references()
    refs.products["prod-b"] = refs.products["prod-b"].model_copy(update={"erp_item_code": None})
    assert reasons(refs=refs) == {R.PRODUCT_NOT_MAPPED}


# --- price policy and amounts -----------------------------------------------------


def test_price_below_the_discount_floor_is_out_of_policy():
    # list price 100, at most 30% off: the floor is 70.00
    lines = {**valid_lines(), "l1": line("opp-1", "prod-a", "2", "69.99")}
    assert reasons(lines, amount="189.98") == {R.PRICE_OUT_OF_POLICY}


def test_price_exactly_at_the_discount_floor_is_within_policy():
    lines = {**valid_lines(), "l1": line("opp-1", "prod-a", "2", "70.00")}
    assert reasons(lines, amount="190.00") == set()


def test_a_line_without_a_unit_price_is_out_of_policy():
    lines = {**valid_lines(), "l1": line("opp-1", "prod-a", "2", "100", unit_price=None)}
    assert reasons(lines) == {R.PRICE_OUT_OF_POLICY}


def test_header_amount_that_differs_from_the_lines_beyond_tolerance_is_an_amount_mismatch():
    assert reasons(amount="250.02") == {R.AMOUNT_MISMATCH}
    assert reasons(amount="249.98") == {R.AMOUNT_MISMATCH}


@pytest.mark.parametrize("amount", ["250.01", "249.99"])
def test_header_amount_within_the_tolerance_of_the_lines_passes(amount):
    assert reasons(amount=amount) == set()


def test_a_deal_without_an_amount_is_an_amount_mismatch():
    failures, resolved = validate(
        Header(**{**header(), "amount": None}),
        {k: Line(**v) for k, v in valid_lines().items()},
        references(),
        POLICY,
    )
    assert {f.reason for f in failures} == {R.AMOUNT_MISMATCH} and resolved is None


def test_a_line_total_that_is_not_quantity_times_unit_price_is_an_amount_mismatch():
    # 2 x 100 is 200, the line says 150; the header agrees with the lines, so only the line is wrong
    lines = {**valid_lines(), "l1": line("opp-1", "prod-a", "2", "100", total_price=Decimal("150.00"))}
    failures, _ = check(lines, amount="200.00")
    assert {f.reason for f in failures} == {R.AMOUNT_MISMATCH}
    assert "line l1" in failures[0].detail


def test_a_line_whose_quantity_times_price_no_erp_line_holds_is_out_of_policy_not_an_error():
    """Hypothesis found it: 99 999 999 999 999.9999 x 1 000 000 000 000.01 has 30 digits, and
    ``quantize`` raised InvalidOperation (the deal would have been quarantined as UNEXPECTED_ERROR)."""
    huge = {**line("opp-1", "prod-a", "1", "100"), "quantity": Decimal("99999999999999.9999")}
    huge.update(unit_price=Decimal("1000000000000.01"), total_price=Decimal("0.00"))
    failures, _ = check({"l1": huge}, amount="0.00")
    assert [f.reason for f in failures if "line l1" in f.detail] == [R.PRICE_OUT_OF_POLICY]
    assert "quantity x unit price" in failures[0].detail


def test_a_product_without_a_price_in_the_deal_currency_is_missing_its_price_book_entry():
    refs = references()
    del refs.prices[("prod-b", "EUR")]
    assert reasons(refs=refs) == {R.MISSING_PRICE_BOOK_ENTRY}


# --- commercial terms -------------------------------------------------------------


def test_no_payment_terms_on_the_deal_or_the_account_is_missing_payment_terms():
    assert reasons(refs=with_account(payment_terms=None), payment_terms=None) == {R.MISSING_PAYMENT_TERMS}


def test_payment_terms_fall_back_to_the_accounts_terms():
    failures, resolved = check(refs=with_account(payment_terms="NET45"), payment_terms=None)
    assert failures == [] and resolved.payment_terms == "NET45"


def test_the_deals_own_payment_terms_win_over_the_accounts():
    _, resolved = check(refs=with_account(payment_terms="NET45"), payment_terms="NET60")
    assert resolved.payment_terms == "NET60"


@pytest.mark.parametrize("schedule", [None, "UNKNOWN"])
def test_a_deal_without_a_known_billing_schedule_is_missing_its_billing_schedule(schedule):
    assert reasons(billing_schedule=schedule) == {R.MISSING_BILLING_SCHEDULE}


def test_neither_a_tax_code_nor_an_exemption_is_missing_tax_treatment():
    assert reasons(refs=with_account(tax_code=None), tax_code=None) == {R.MISSING_TAX_TREATMENT}


def test_a_tax_exemption_on_the_deal_alone_is_enough_tax_treatment():
    failures, resolved = check(refs=with_account(tax_code=None), tax_code=None, tax_exempt=True)
    assert failures == [] and resolved.tax_exempt is True and resolved.tax_code is None


def test_a_tax_exemption_on_the_account_alone_is_enough_tax_treatment():
    failures, resolved = check(refs=with_account(tax_code=None, tax_exempt=True), tax_code=None)
    assert failures == [] and resolved.tax_exempt is True


def test_tax_code_falls_back_to_the_accounts_code():
    failures, resolved = check(refs=with_account(tax_code="DE-RED"), tax_code=None)
    assert failures == [] and resolved.tax_code == "DE-RED"


# --- addresses --------------------------------------------------------------------

SIDES = [("bill_to", R.MISSING_BILL_TO), ("ship_to", R.MISSING_SHIP_TO)]


@pytest.mark.parametrize(("side", "reason"), SIDES)
def test_an_incomplete_address_on_the_deal_falls_back_to_the_accounts(side, reason):
    account_address = {**ADDRESS, "city": "Hamburg"}
    failures, resolved = check(refs=with_account(**{side: Address(**account_address)}), **{side: INCOMPLETE})
    assert failures == []
    assert getattr(resolved, side) == Address(**account_address)


@pytest.mark.parametrize(("side", "reason"), SIDES)
def test_an_incomplete_address_on_both_deal_and_account_is_missing(side, reason):
    assert reasons(refs=with_account(**{side: Address(**INCOMPLETE)}), **{side: INCOMPLETE}) == {reason}


@pytest.mark.parametrize(("side", "reason"), SIDES)
def test_no_address_on_the_deal_or_the_account_is_missing(side, reason):
    assert reasons(refs=with_account(**{side: None}), **{side: None}) == {reason}


def test_a_close_date_far_from_the_day_it_is_judged_is_out_of_range_and_a_near_one_is_not():
    today = dt.date(2026, 11, 27)
    deal, lines = Header(**header(close_date=dt.date(9999, 12, 31))), {k: Line(**v) for k, v in valid_lines().items()}
    failures, resolved = validate(deal, lines, references(), POLICY, today)
    assert [f.reason for f in failures] == [R.CLOSE_DATE_OUT_OF_RANGE] and resolved is None
    near = Header(**header(close_date=today - dt.timedelta(days=300)))
    assert validate(near, lines, references(), POLICY, today)[0] == []


# --- taxonomy of validation reasons -----------------------------------------------


def reasons_validation_can_produce() -> set[R]:
    """Every reason code ``app/domain/orders/validation.py`` names (as ``R.<CODE>``)."""
    return {R[name] for name in re.findall(r"\bR\.([A-Z_]+)", inspect.getsource(validation))}


def test_validation_can_produce_exactly_the_reasons_these_tests_cover():
    assert reasons_validation_can_produce() == {
        R.MISSING_CURRENCY,
        R.UNSUPPORTED_CURRENCY,
        R.UNKNOWN_ACCOUNT,
        R.CUSTOMER_NOT_LINKED,
        R.NO_LINES,
        R.INVALID_QUANTITY,
        R.UNKNOWN_PRODUCT,
        R.PRODUCT_NOT_MAPPED,
        R.PRICE_OUT_OF_POLICY,
        R.AMOUNT_MISMATCH,
        R.MISSING_PRICE_BOOK_ENTRY,
        R.MISSING_PAYMENT_TERMS,
        R.MISSING_BILLING_SCHEDULE,
        R.MISSING_TAX_TREATMENT,
        R.MISSING_BILL_TO,
        R.MISSING_SHIP_TO,
        R.CLOSE_DATE_OUT_OF_RANGE,
    }


def test_every_reason_validation_can_produce_has_a_taxonomy_entry():
    produced = reasons_validation_can_produce()
    assert produced <= TAXONOMY.keys()
    for reason in produced:
        c = classify(reason)
        assert c.owner_team and c.sla_minutes > 0


def test_every_reason_code_has_a_taxonomy_entry():
    assert set(R) == TAXONOMY.keys()


def test_only_missing_dependencies_park_the_deal():
    assert {r for r in reasons_validation_can_produce() if classify(r).parks} == {
        R.UNKNOWN_ACCOUNT,
        R.CUSTOMER_NOT_LINKED,
        R.UNKNOWN_PRODUCT,
        R.MISSING_PRICE_BOOK_ENTRY,
    }
