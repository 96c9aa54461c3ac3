"""``crm-writer`` turns an update command into row writes: ERP-owned columns only, nulls left alone."""

from __future__ import annotations

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
    written = {col for rule in load_writeback().values() for col in rule["columns"].values()}
    assert not written & {"stage_name", "amount", "close_date", "name", "account_id", "currency_iso_code"}
