"""Declarative table mappings turn decoded CRM rows into canonical fields of the domain models."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal
from typing import Any

import fastavro
import pytest
from pydantic import BaseModel

from app.cdc.columns import row_columns
from app.cdc.mapping import ADDRESS_PARTS, MAPPINGS_DIR, UNAVAILABLE, Mapped, mapping_for
from app.contracts import default_index
from app.domain.changes import keep
from app.domain.errors import ReasonCode, SyncError
from app.domain.orders.deal import Address, Header, Line
from app.domain.orders.references import Account, Product
from app.sim import debezium as sim

UTC = dt.UTC


def value_schema(table: str) -> dict[str, Any]:
    return default_index().expanded(f"crm.public.{table}.Value")


def decoded(table: str, row: dict[str, Any]) -> dict[str, Any]:
    """``row`` written and read back with ``crm.public.<table>.Value``: the types a real consumer sees."""
    schema = fastavro.parse_schema(value_schema(table))
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, row)
    buf.seek(0)
    return fastavro.schemaless_reader(buf, schema)


def apply(table: str, row: dict[str, Any]) -> Mapped:
    """The table's mapping, compiled for the simulator's writer schema, applied to ``row``."""
    return mapping_for(table).reader(row_columns(value_schema(table))).apply(row)


def opp_row(stage: str = "Closed Won", **overrides) -> dict[str, Any]:
    return sim.opportunity_row("006-1", "001-1", stage, Decimal("12000"), **overrides)


def opp_fields(stage: str = "Closed Won", **overrides) -> dict[str, Any]:
    return apply("opportunity", decoded("opportunity", opp_row(stage, **overrides))).fields


# --- opportunity → Header ---------------------------------------------------------


def test_an_opportunity_row_maps_to_canonical_header_fields():
    row = opp_row(
        name="ACME expansion",
        created_date=dt.datetime(2026, 11, 27, 10, 15, 30, 123456, tzinfo=UTC),
        last_modified_date=dt.datetime(2026, 11, 27, 10, 16),
        is_deleted=False,
    )
    mapped = apply("opportunity", decoded("opportunity", row))
    f = mapped.fields
    assert mapped.row_id == "006-1" and mapped.unavailable == frozenset()
    assert f["account_id"] == "001-1" and f["name"] == "ACME expansion" and f["currency"] == "EUR"
    assert f["stage"] == "CLOSED_WON" and f["billing_schedule"] == "ANNUAL"
    assert f["amount"] == Decimal("12000.00") and isinstance(f["amount"], Decimal)
    assert f["close_date"] == dt.date(2026, 11, 27) and type(f["close_date"]) is dt.date
    assert f["last_modified_at"] == dt.datetime(2026, 11, 27, 10, 16, tzinfo=UTC)
    assert f["created_at"] == dt.datetime(2026, 11, 27, 10, 15, 30, 123456, tzinfo=UTC)
    assert f["bill_to"] == sim.ADDRESS and f["ship_to"] == sim.ADDRESS
    assert f["tax_exempt"] is False and f["deleted"] is False and f["contract_term_months"] == 12
    header = Header(**f)
    assert header.bill_to == Address(**sim.ADDRESS) and header.bill_to.complete


@pytest.mark.parametrize(
    ("stage", "canonical"),
    [
        ("Closed Won", "CLOSED_WON"),
        ("Negotiation/Review", "NEGOTIATION"),
        ("CLOSED_WON", "CLOSED_WON"),
        ("Won!", "UNKNOWN"),
    ],
    ids=["label", "alias", "already-canonical", "unknown"],
)
def test_a_stage_label_maps_to_its_canonical_stage(stage, canonical):
    assert opp_fields(stage)["stage"] == canonical


@pytest.mark.parametrize(
    ("schedule", "canonical"),
    [("Annually", "ANNUAL"), ("Quarterly", "QUARTERLY"), ("MONTHLY", "MONTHLY"), ("Every full moon", "UNKNOWN")],
    ids=["alias", "label", "already-canonical", "unknown"],
)
def test_a_billing_schedule_label_maps_to_its_canonical_schedule(schedule, canonical):
    assert opp_fields(billing_schedule=schedule)["billing_schedule"] == canonical


def test_a_micro_timestamp_long_maps_to_an_aware_utc_datetime():
    micros = 1_795_774_530_123_456  # 2026-11-27T10:15:30.123456Z
    row = decoded("opportunity", opp_row(last_modified_date=micros))
    assert row["last_modified_date"] == micros  # MicroTimestamp has no Avro logical type: a plain long
    value = apply("opportunity", row).fields["last_modified_at"]
    assert value == dt.datetime(2026, 11, 27, 10, 15, 30, 123456, tzinfo=UTC) and value.utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize("text", ["2026-11-27T10:15:30.12Z", "2026-11-27T10:15:30Z"])
def test_a_zoned_timestamp_string_in_utc_maps_to_an_aware_datetime(text):
    value = opp_fields(created_date=text)["created_at"]
    assert value.tzinfo is not None and value.utcoffset() == dt.timedelta(0)
    assert value.replace(microsecond=0) == dt.datetime(2026, 11, 27, 10, 15, 30, tzinfo=UTC)


def test_a_zoned_timestamp_with_an_offset_keeps_the_instant():
    value = opp_fields(created_date="2026-11-27T11:15:30+01:00")["created_at"]
    assert value == dt.datetime(2026, 11, 27, 10, 15, 30, tzinfo=UTC)


def test_an_all_null_address_maps_to_none():
    nulls = {f"billing_{part}": None for part in ("street", "city", "postal_code", "country")}
    f = opp_fields(**nulls)
    assert f["bill_to"] is None and f["ship_to"] == sim.ADDRESS


def test_a_partial_address_maps_to_an_incomplete_address():
    f = opp_fields(billing_street=None)
    assert Address(**f["bill_to"]).complete is False


def test_null_flags_take_the_mapping_defaults():
    f = opp_fields(tax_exempt=None, is_deleted=None)
    assert f["tax_exempt"] is False and f["deleted"] is False


# --- conversion failures -----------------------------------------------------------


def test_a_value_that_cannot_be_converted_is_a_mapping_error():
    row = {**decoded("opportunity", opp_row()), "amount": "twelve thousand"}
    with pytest.raises(SyncError) as err:
        apply("opportunity", row)
    assert err.value.reason is ReasonCode.MAPPING_ERROR and "opportunity.amount" in err.value.detail


# --- unchanged TOAST placeholder --------------------------------------------------


def test_the_unavailable_placeholder_in_a_string_column_is_reported_and_not_mapped():
    row = decoded("opportunity", sim.with_unavailable(opp_row(name="ACME expansion"), "name"))
    assert row["name"] == UNAVAILABLE
    mapped = apply("opportunity", row)
    assert mapped.unavailable == frozenset({"name"}) and "name" not in mapped.fields
    assert mapped.fields["stage"] == "CLOSED_WON"


def test_an_address_column_left_unavailable_keeps_that_part_only_and_the_sent_parts_apply():
    """Only the unsent part keeps its previous value: reporting the whole address unavailable (as before)
    dropped the street a change had sent beside an unchanged TOASTed city."""
    row = {**decoded("opportunity", sim.with_unavailable(opp_row(), "billing_city")), "billing_street": "New 1"}
    mapped = apply("opportunity", row)
    assert mapped.unavailable == frozenset({"bill_to.city"})
    assert mapped.fields["bill_to"] == {k: v for k, v in {**sim.ADDRESS, "street": "New 1"}.items() if k != "city"}
    previous = {"bill_to": {**sim.ADDRESS, "city": "Old Town"}}
    kept = keep(mapped.fields, mapped.unavailable, previous)
    assert kept["bill_to"] == {**sim.ADDRESS, "street": "New 1", "city": "Old Town"}
    assert mapped.fields["ship_to"] == sim.ADDRESS


def test_an_address_with_every_part_unavailable_is_unavailable_whole():
    row = decoded("opportunity", sim.with_unavailable(opp_row(), *(f"billing_{p}" for p in ADDRESS_PARTS)))
    mapped = apply("opportunity", row)
    assert mapped.unavailable == frozenset({"bill_to"}) and "bill_to" not in mapped.fields


def test_the_unavailable_placeholder_as_bytes_is_reported_too():
    row = {**decoded("opportunity", opp_row()), "amount": UNAVAILABLE.encode()}
    mapped = apply("opportunity", row)
    assert mapped.unavailable == frozenset({"amount"}) and "amount" not in mapped.fields


# --- rows and tables the mapping cannot handle ------------------------------------


@pytest.mark.parametrize("row_id", [None, UNAVAILABLE], ids=["null", "unavailable"])
def test_a_row_without_an_id_is_a_mapping_error(row_id):
    row = {**decoded("opportunity", opp_row()), "id": row_id}
    with pytest.raises(SyncError) as err:
        apply("opportunity", row)
    assert err.value.reason is ReasonCode.MAPPING_ERROR


def test_a_row_missing_its_id_column_is_a_mapping_error():
    row = {k: v for k, v in decoded("opportunity", opp_row()).items() if k != "id"}
    with pytest.raises(SyncError) as err:
        apply("opportunity", row)
    assert err.value.reason is ReasonCode.MAPPING_ERROR


def test_a_table_without_a_mapping_file_is_a_mapping_error():
    with pytest.raises(SyncError) as err:
        mapping_for("no_such_table")
    assert err.value.reason is ReasonCode.MAPPING_ERROR and "no_such_table" in err.value.detail


# --- mapping files against models and contracts -----------------------------------

PRICEBOOK_TARGETS = {"price_book_id", "product_id", "currency", "list_price", "active"}
TARGETS: dict[str, set[str]] = {
    "opportunity": set(Header.model_fields),
    "opportunity_line_item": set(Line.model_fields),
    "account": set(Account.model_fields),
    "product": set(Product.model_fields),
    "pricebook_entry": PRICEBOOK_TARGETS,
    "contact": {"account_id"},  # counted only; no personal field is mapped
}
MODELS: dict[str, type[BaseModel]] = {
    "opportunity": Header,
    "opportunity_line_item": Line,
    "account": Account,
    "product": Product,
}
SAMPLE_ROWS = {
    "opportunity": opp_row(),
    "opportunity_line_item": sim.line_row("00k-1", "006-1", "01t-1", "3", "89.99", list_price="99.99", discount="10"),
    "account": sim.account_row("001-1", "ACME GmbH", erp_customer_number="C-1"),
    "product": sim.product_row("01t-1", "SKU-1", "Widget", quantity_unit_of_measure="EA"),
    "pricebook_entry": sim.pricebook_row("01u-1", "01t-1", "EUR", "99.9", pricebook_id="01s-std", is_active=True),
}


def mapped_columns(table: str) -> set[str]:
    mapping = mapping_for(table)
    columns = {mapping.id_column}
    for rule in mapping.rules:
        columns |= set(rule.columns)
    return columns


def test_every_mapping_file_is_covered_here():
    assert {p.stem for p in MAPPINGS_DIR.glob("*.toml")} == set(TARGETS)


@pytest.mark.parametrize("table", sorted(TARGETS))
def test_every_mapping_targets_only_fields_of_the_model_it_feeds(table):
    mapping = mapping_for(table)
    assert mapping.table == table and mapping.version >= 1
    assert {rule.name for rule in mapping.rules} <= TARGETS[table]


def test_the_pricebook_entry_mapping_targets_exactly_the_price_fields():
    assert {rule.name for rule in mapping_for("pricebook_entry").rules} == PRICEBOOK_TARGETS


@pytest.mark.parametrize("table", sorted(TARGETS))
def test_every_mapped_column_exists_in_the_value_contract(table):
    contract = {f["name"] for f in default_index().raw[f"crm.public.{table}.Value"]["fields"]}
    assert mapped_columns(table) <= contract


@pytest.mark.parametrize("table", sorted(TARGETS))
def test_the_simulators_writer_schema_of_every_table_is_readable(table):
    assert mapping_for(table).reader(row_columns(value_schema(table))).problems == ()


@pytest.mark.parametrize("table", sorted(MODELS))
def test_a_decoded_row_of_every_table_maps_to_a_valid_model(table):
    mapped = apply(table, decoded(table, SAMPLE_ROWS[table]))
    assert mapped.row_id == SAMPLE_ROWS[table]["id"]
    MODELS[table].model_validate(mapped.fields)


def test_a_decoded_pricebook_row_maps_to_the_price_fields():
    mapped = apply("pricebook_entry", decoded("pricebook_entry", SAMPLE_ROWS["pricebook_entry"]))
    assert mapped.fields == {
        "price_book_id": "01s-std",
        "product_id": "01t-1",
        "currency": "EUR",
        "list_price": Decimal("99.90"),
        "active": True,
    }


def test_a_contact_keeps_only_its_account_link_and_no_personal_data():
    row = sim.contact_row("003-1", "001-1", email="erika@example.com")
    mapped = apply("contact", decoded("contact", row))
    assert mapped.fields == {"account_id": "001-1"}
