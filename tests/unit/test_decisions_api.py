"""The decision-boundary API's answers, without a worker: status, dry run, credit, the OpenAPI document."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import schemathesis

from app.domain.customer_links import CustomerLink, CustomerStatus
from app.domain.feedback.lifecycle import ErpKind
from app.domain.fx import Rates
from app.readmodels.decisions import CreditStatus, Stage, account_status, check, credit, deal_status, openapi
from tests.support.deals import NOW, references
from tests.support.erp import OPP, Deal, at


def link(**fields) -> CustomerLink:
    base = {"account_id": "acc-1", "customer_number": "C-1001", "status": CustomerStatus.ACTIVE,
            "credit_limit": Decimal("1000.00"), "currency": "EUR", "event_id": "e-1", "occurred_at_ms": 1}  # fmt: skip
    return CustomerLink(**{**base, **fields})


def test_a_deal_s_status_follows_its_order_through_the_erp():
    deal = Deal()
    status = deal_status(deal.state)
    assert status.lifecycle_stage is Stage.ORDER_REQUESTED and status.order_number is None
    assert status.create_command_id == deal.state.order.create_command_id
    deal.erp(ErpKind.ACCEPTED, at(minutes=5), accepted_amount="260.00")
    status = deal_status(deal.state)
    assert (status.lifecycle_stage, status.order_number, status.amount) == (Stage.ACCEPTED, "SO-1", Decimal("250.00"))
    assert [(a.alert_id, a.kind) for a in status.open_drift_alerts] == [(f"{OPP}:amount:accepted:1", "AMOUNT_MISMATCH")]
    assert status.renewal is not None and status.renewal.term_end == dt.date(2027, 11, 27)
    deal.erp(ErpKind.INVOICED, at(days=1), amount="260.00")
    assert deal_status(deal.state).lifecycle_stage is Stage.INVOICED


def test_a_deal_waiting_for_its_customer_link_is_waiting_with_the_pipeline_s_reason():
    deal = Deal(close=False)
    deal.refs = references(linked=False)
    deal.crm("opportunity", OPP, {**_header()}, now=NOW)
    status = deal_status(deal.state)
    assert status.lifecycle_stage is Stage.WAITING
    raised = {e.reason_code for e in status.open_exceptions}
    assert raised == {"CUSTOMER_NOT_LINKED", "NO_LINES"}
    verdict = check(deal.state, deal.refs, deal.policy, NOW)
    assert not verdict.can_become_order and not verdict.complete
    reasons = {r.reason_code: r for r in verdict.reasons}
    assert set(reasons) == raised  # the same reason codes the pipeline raised
    assert reasons["CUSTOMER_NOT_LINKED"].waits_for_dependency and reasons["CUSTOMER_NOT_LINKED"].owner_team
    assert verdict.credit.status is CreditStatus.NOT_LINKED


def _header() -> dict:
    from tests.support.deals import header

    return header()


def test_a_complete_deal_with_credit_can_become_an_order_and_the_dry_run_emits_nothing():
    deal = Deal()
    before = deal.stored
    verdict = check(deal.state, deal.refs, deal.policy, NOW)
    assert verdict.can_become_order and verdict.complete and verdict.reasons == []
    assert verdict.credit.status is CreditStatus.OK
    assert deal.stored == before


@pytest.mark.parametrize(
    ("fields", "amount", "currency", "status"),
    [
        ({}, "250.00", "EUR", CreditStatus.OK),
        ({"credit_hold": True}, "250.00", "EUR", CreditStatus.ON_HOLD),
        ({}, "1000.01", "EUR", CreditStatus.OVER_LIMIT),
        ({}, "250.00", "USD", CreditStatus.LIMIT_IN_OTHER_CURRENCY),
        ({"credit_limit": None}, "99999.00", "EUR", CreditStatus.OK),
        ({"status": CustomerStatus.DEACTIVATED}, "250.00", "EUR", CreditStatus.NOT_LINKED),
    ],
)
def test_credit_is_judged_from_the_erp_s_link(fields, amount, currency, status):
    verdict = credit(Decimal(amount), currency, None, link(**fields))
    assert verdict.status is status and verdict.ok is (status is CreditStatus.OK)


def test_a_limit_in_another_currency_is_compared_through_the_rate_table():
    rates = Rates("EUR", {"USD": Decimal("0.95")})
    assert credit(Decimal("1000.00"), "USD", None, link(), rates).status is CreditStatus.OK  # 950 EUR
    over = credit(Decimal("1100.00"), "USD", None, link(), rates)  # 1045 EUR
    assert over.status is CreditStatus.OVER_LIMIT and "USD" in over.detail
    assert credit(Decimal("10"), "JPY", None, link(), rates).status is CreditStatus.LIMIT_IN_OTHER_CURRENCY


def test_an_account_shows_its_link_or_that_it_has_none():
    refs = references()
    shown = account_status("acc-1", refs.account("acc-1"), link(credit_hold=True))
    assert (shown.erp_customer_number, shown.link_status, shown.credit_hold) == ("C-1001", "ACTIVE", True)
    unlinked = account_status("acc-2", None, None)
    assert (unlinked.known_in_crm, unlinked.link_status, unlinked.erp_customer_number) == (False, "NOT_LINKED", None)


def test_the_openapi_document_loads_and_names_every_answer():
    doc = openapi("http://127.0.0.1:6066")
    schema = schemathesis.openapi.from_dict(doc)
    operations = {op.ok().label for op in schema.get_all_operations()}
    assert operations == {
        "GET /api/v1/deals/{opportunity_id}",
        "GET /api/v1/deals/{opportunity_id}/check",
        "GET /api/v1/accounts/{account_id}",
    }
    for path in doc["paths"].values():
        assert set(path["get"]["responses"]) == {"200", "400", "401", "404", "503"}
