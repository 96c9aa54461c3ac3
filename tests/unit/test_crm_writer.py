"""``crm-writer`` turns an update command into row writes: ERP-owned columns only, nulls left alone."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from app.ops.crm_writer import RowWrite, load_writeback, plan

USER = "005-integration"


def update(**fields) -> dict:
    base = {"envelope": {"command_id": "c-1"}, "opportunity_id": "006-1", "account_id": "001-1"}
    return base | {k: None for k in ("erp_order_number", "order_status", "credit_hold", "erp_customer_number")} | fields


def test_set_fields_become_one_write_per_table_stamped_with_the_integration_user():
    writes = plan(
        update(erp_order_number="SO-1", order_status="ACCEPTED", amount_paid=Decimal("10.00"), credit_hold=True,
               erp_customer_number="C-9"),
        load_writeback(), USER,
    )  # fmt: skip
    assert writes == [
        RowWrite("opportunity", "id", "006-1",
                 {"erp_order_number": "SO-1", "order_status": "ACCEPTED", "amount_paid": Decimal("10.00")},
                 ("last_modified_by_id", USER), "last_modified_date"),
        RowWrite("account", "id", "001-1", {"erp_customer_number": "C-9", "credit_hold": True},
                 ("last_modified_by_id", USER), "last_modified_date"),
    ]  # fmt: skip


def test_null_means_unchanged_and_a_table_with_nothing_to_set_is_not_written():
    assert plan(update(order_status="SHIPPED"), load_writeback(), USER) == [
        RowWrite("opportunity", "id", "006-1", {"order_status": "SHIPPED"}, ("last_modified_by_id", USER),
                 "last_modified_date"),
    ]  # fmt: skip
    assert plan(update(), load_writeback(), USER) == []


def test_crm_owned_fields_are_never_written_back():
    updates = [rule for rule in load_writeback().values() if "insert" not in rule]
    written = {col for rule in updates for col in rule["columns"].values()}
    assert not written & {"stage_name", "amount", "close_date", "name", "account_id", "currency_iso_code"}


def test_a_renewal_command_inserts_its_opportunity_once_and_touches_no_other_row():
    command = {
        "envelope": {"command_id": "006-1:renewal:2027-11-27"},
        "opportunity_id": "006-1",
        "renewal_opportunity_id": "006-1-renewal-20271127",
        "account_id": "001-1",
        "name": "Renewal: ACME",
        "term_start": date(2026, 11, 27),
        "term_end": date(2027, 11, 27),
        "contract_term_months": 12,
        "amount": Decimal("250.00"),
        "currency": "EUR",
    }
    assert plan(command, load_writeback(), USER) == [
        RowWrite("opportunity", "id", "006-1-renewal-20271127",
                 {"renewal_of": "006-1", "account_id": "001-1", "name": "Renewal: ACME",
                  "close_date": date(2027, 11, 27), "contract_term_months": 12, "amount": Decimal("250.00"),
                  "currency_iso_code": "EUR", "stage_name": "Prospecting"},
                 ("last_modified_by_id", USER), "last_modified_date", insert=True),
    ]  # fmt: skip
