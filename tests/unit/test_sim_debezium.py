"""The Debezium simulator builds values that encode against the CRM contracts and read back unchanged."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from decimal import Decimal
from itertools import pairwise
from typing import Any

import fastavro
import pytest

from app.contracts import default_index
from app.sim import debezium as sim


def _schema(name: str) -> Any:
    return fastavro.parse_schema(default_index().expanded(name))


def roundtrip(name: str, value: dict[str, Any]) -> dict[str, Any]:
    schema = _schema(name)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, value)
    buf.seek(0)
    return fastavro.schemaless_reader(buf, schema)


ROWS = {
    "account": sim.account_row("001-1", "Acme GmbH", erp_customer_number="C-1", annual_revenue=Decimal("1000000.5")),
    "contact": sim.contact_row("003-1", "001-1", email="erika@example.com", phone="+49 30 1"),
    "product": sim.product_row("01t-1", "SKU-1", "Widget", quantity_unit_of_measure="EA"),
    "pricebook_entry": sim.pricebook_row("01u-1", "01t-1", "EUR", "99.9", pricebook_id="01s-std", is_active=True),
    "opportunity": sim.opportunity_row(
        "006-1",
        "001-1",
        "Closed Won",
        Decimal("12000"),
        probability=Decimal("90"),
        created_date=datetime(2026, 11, 27, 10, 15, 30, 123456, tzinfo=UTC),
        last_modified_date=datetime(2026, 11, 27, 10, 16),
    ),
    "opportunity_line_item": sim.line_row(
        "00k-1",
        "006-1",
        "01t-1",
        Decimal("3"),
        Decimal("89.99"),
        list_price=Decimal("99.99"),
        discount=Decimal("10"),
        service_date=date(2027, 1, 1),
        end_date="2027-12-31",
    ),
}
TX = sim.transaction(4711, 0x1000, total_order=2, data_collection_order=1)


def events(table: str, row: dict[str, Any], tx: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    lsns = sim.Lsn(seed=3)
    changed = {**row}
    return {
        "c": sim.create(table, row, lsns, tx=tx),
        "u": sim.update(table, row, changed, lsns, tx=tx),
        "d": sim.delete(table, row, lsns, tx=tx),
        "r": sim.snapshot_read(table, row, lsns),
        "t": sim.truncate(table, lsns, tx=tx),
    }


@pytest.mark.parametrize("tx", [None, TX], ids=["no-tx", "tx"])
@pytest.mark.parametrize("table", sim.TABLES)
def test_every_op_roundtrips_through_the_envelope_contract(table, tx):
    row = ROWS[table]
    for op, event in events(table, row, tx).items():
        decoded = roundtrip(f"crm.public.{table}.Envelope", event)
        assert decoded == event, op
        assert decoded["op"] == op
        assert decoded["source"]["table"] == table and decoded["source"]["lsn"] > 0
        if op == "r":
            assert decoded["transaction"] is None and decoded["source"]["snapshot"] == "true"
        else:
            assert decoded["transaction"] == tx and decoded["source"]["snapshot"] == "false"
            if tx is not None:
                assert decoded["source"]["txId"] == 4711
    assert roundtrip(f"crm.public.{table}.Key", sim.key(row["id"])) == {"id": row["id"]}


def test_rows_have_every_column_and_debezium_value_types():
    for table, row in ROWS.items():
        assert list(row) == list(sim.value_columns(table))
    opp, line = ROWS["opportunity"], ROWS["opportunity_line_item"]
    assert opp["amount"] == Decimal("12000.00") and opp["amount"].as_tuple().exponent == -2
    assert opp["close_date"] == date(2026, 11, 27) and opp["name"] is None
    assert opp["created_date"] == "2026-11-27T10:15:30.123456Z"
    assert opp["last_modified_date"] == 1_795_774_560_000_000
    assert opp["billing_country"] == opp["shipping_country"] == "DE" and opp["billing_city"] == "Berlin"
    assert line["quantity"] == Decimal("3.0000") and line["quantity"].as_tuple().exponent == -4
    assert line["total_price"] == Decimal("269.97") and line["end_date"] == date(2027, 12, 31)
    assert ROWS["product"]["erp_item_code"] == "ERP-SKU-1"


def test_decimals_decode_equal_to_the_input():
    line = sim.line_row("00k-2", "006-1", "01t-1", Decimal("1.5"), Decimal("19.99"), discount=Decimal("12.5"))
    after = roundtrip("crm.public.opportunity_line_item.Envelope", sim.create("opportunity_line_item", line, sim.Lsn()))
    assert after["after"]["quantity"] == Decimal("1.5")
    assert after["after"]["unit_price"] == Decimal("19.99") and after["after"]["discount"] == Decimal("12.5")
    assert after["after"]["total_price"] == Decimal("29.99")  # 29.985 rounded half up, as numeric(18,2) does


def test_decimals_round_half_up_and_reject_overflow():
    assert sim.pricebook_row("01u-2", "01t-1", "EUR", "0.005")["unit_price"] == Decimal("0.01")
    with pytest.raises(ValueError, match="overflows"):
        sim.opportunity_row("006-2", "001-1", "Prospecting", 0, probability=Decimal("1000"))


@pytest.mark.parametrize("table", sim.UNWRAPPED_TABLES)
@pytest.mark.parametrize("op", ["c", "u", "d", "r"])
def test_unwrapped_roundtrips_through_its_contract(table, op):
    value = sim.unwrapped(table, ROWS[table], op, lsn=123_456, ts_ms=1_795_774_530_000)
    decoded = roundtrip(f"crm.public.{table}.Unwrapped", value)
    assert decoded == value
    assert decoded["__deleted"] == ("true" if op == "d" else "false")
    assert decoded["__op"] == op and decoded["__source_lsn"] == 123_456


def test_unwrapped_only_for_tables_with_a_contract():
    with pytest.raises(ValueError):
        sim.unwrapped("account", ROWS["account"], "c", 1, 1)


def test_lsn_strictly_increases_and_clock_never_goes_back():
    lsns = sim.Lsn(start=1_000, seed=7)
    positions, clock, xids = [], [], []
    for _ in range(200):
        positions.append(lsns.next())
        clock.append(lsns.ts_ms)
        xids.append(lsns.tx_id)
    assert positions[0] == 1_000
    assert all(b > a for a, b in pairwise(positions))
    assert all(b >= a for a, b in pairwise(clock))
    assert all(b > a for a, b in pairwise(xids))
    again = sim.Lsn(start=1_000, seed=7)
    assert [again.next() for _ in range(200)] == positions and again.ts_ms == clock[-1]


def test_events_follow_their_lsn_source():
    lsns = sim.Lsn()
    first = sim.create("account", ROWS["account"], lsns)
    second = sim.update("account", None, ROWS["account"], lsns)
    assert second["source"]["lsn"] > first["source"]["lsn"]
    assert second["source"]["ts_ms"] >= first["source"]["ts_ms"]
    assert second["source"]["txId"] == first["source"]["txId"] + 1
    assert first["ts_ms"] > first["source"]["ts_ms"]
    lsn = first["source"]["lsn"]
    assert first["source"]["sequence"] == f'["{lsn - 1}","{lsn}"]'
    assert first["source"]["ts_us"] == first["source"]["ts_ms"] * 1000


def test_snapshot_last_marks_the_final_read():
    lsns = sim.Lsn()
    assert sim.snapshot_read("product", ROWS["product"], lsns)["source"]["snapshot"] == "true"
    last = sim.snapshot_read("product", ROWS["product"], lsns, last=True)
    assert last["op"] == "r" and last["source"]["snapshot"] == "last"


def test_bad_op_snapshot_or_table_is_rejected():
    with pytest.raises(ValueError):
        sim.envelope("account", "x", None, None, 1, 1)
    with pytest.raises(ValueError):
        sim.source("account", 1, 1, snapshot="yes")
    with pytest.raises(ValueError):
        sim.envelope("invoice", "c", None, None, 1, 1)


@pytest.mark.parametrize(
    "build",
    [
        lambda: sim.account_row("001-9", "X", colour="red"),
        lambda: sim.contact_row("003-9", "001-9", nickname="x"),
        lambda: sim.product_row("01t-9", "SKU", "X", price=1),
        lambda: sim.pricebook_row("01u-9", "01t-9", "EUR", 1, currency_code="EUR"),
        lambda: sim.opportunity_row("006-9", "001-9", "Prospecting", 1, amount_eur=1),
        lambda: sim.line_row("00k-9", "006-9", "01t-9", 1, 1, totalprice=1),
    ],
)
def test_unknown_override_raises_key_error(build):
    with pytest.raises(KeyError):
        build()


def test_unavailable_string_survives_roundtrip():
    after = sim.with_unavailable(ROWS["opportunity"], "billing_street", "name")
    assert ROWS["opportunity"]["billing_street"] == "Friedrichstraße 100"  # the input row is untouched
    event = sim.update("opportunity", None, after, sim.Lsn())
    decoded = roundtrip("crm.public.opportunity.Envelope", event)
    assert decoded["after"]["billing_street"] == decoded["after"]["name"] == sim.UNAVAILABLE
    unwrapped = sim.unwrapped("opportunity", after, "u", 1, 1)
    assert roundtrip("crm.public.opportunity.Unwrapped", unwrapped)["billing_street"] == sim.UNAVAILABLE


def test_unavailable_decimal_is_bytes_that_do_not_survive_decoding():
    after = sim.with_unavailable(ROWS["opportunity"], "amount")
    assert after["amount"] == sim.UNAVAILABLE.encode()
    decoded = roundtrip("crm.public.opportunity.Envelope", sim.update("opportunity", None, after, sim.Lsn()))
    amount = decoded["after"]["amount"]  # fastavro reads the bytes as an unscaled integer: a nonsense amount
    assert isinstance(amount, Decimal) and amount > Decimal("1e60")


@pytest.mark.parametrize("column", ["id", "tax_exempt", "close_date", "last_modified_date", "contract_term_months"])
def test_only_string_and_bytes_columns_can_be_unavailable(column):
    with pytest.raises(ValueError):
        sim.with_unavailable(ROWS["opportunity"], column)
