"""Columns are read by their writer schema: what real Debezium 3.6.1 wrote, in every time and decimal mode.

The messages are recordings (tests/fixtures/debezium/record.py) of one PostgreSQL row holding a
value of each temporal and numeric kind, captured under each ``time.precision.mode`` and
``decimal.handling.mode``; a mapping asks each column for a meaning, never for an encoding.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import time
from decimal import Decimal

import fastavro
import pytest

from app.cdc.columns import Meaning, Unreadable, WriterColumn, reader, row_columns, writer_column
from app.cdc.envelope import Normaliser, normalise, row_record
from app.cdc.mapping import TableMapping
from app.domain.changes import Op
from app.domain.errors import ReasonCode, SyncError
from app.serde import wire
from app.serde.avro import AvroDecoder, _without_decimal_types
from app.serde.registry import SchemaResolver
from tests.fixtures.debezium import load

UTC = dt.UTC
KINDS = TableMapping(
    {
        "table": "kinds",
        "version": 1,
        "fields": {
            "d": {"column": "d", "as": "date"},
            "t": {"column": "t", "as": "time"},
            "t3": {"column": "t3", "as": "time"},
            "ttz": {"column": "ttz", "as": "time"},
            "ts": {"column": "ts", "as": "timestamp"},
            "ts3": {"column": "ts3", "as": "timestamp"},
            "tstz": {"column": "tstz", "as": "timestamp"},
            "n": {"column": "n", "as": "decimal"},
            "nv": {"column": "nv", "as": "decimal"},
            "i": {"column": "i", "as": "integer"},
            "b": {"column": "b", "as": "boolean"},
            "txt": "txt",
        },
    }
)
MICROS = {
    "d": dt.date(2026, 12, 31),
    "t": dt.time(13, 45, 30, 123456),
    "t3": dt.time(13, 45, 30, 123000),
    "ttz": dt.time(11, 45, 30, 123456, tzinfo=UTC),  # 13:45:30.123456+02 as Debezium normalises it
    "ts": dt.datetime(2026, 12, 7, 10, 15, 30, 123456, tzinfo=UTC),  # a timestamp's wall clock, read as UTC
    "ts3": dt.datetime(2026, 12, 7, 10, 15, 30, 123000, tzinfo=UTC),
    "tstz": dt.datetime(2026, 12, 7, 9, 15, 30, 123456, tzinfo=UTC),  # 10:15:30.123456+01
    "n": Decimal("1234.56"),
    "nv": Decimal("3.14159265358979"),
    "i": 42,
    "b": True,
    "txt": "hello",
}
# time.precision.mode=connect keeps milliseconds for time and timestamp (not for the zoned kinds)
MILLIS = MICROS | {"t": dt.time(13, 45, 30, 123000), "ts": dt.datetime(2026, 12, 7, 10, 15, 30, 123000, tzinfo=UTC)}
EXPECTED = {"adaptive-precise": MICROS, "micros-double": MICROS, "connect-string": MILLIS, "unwrapped": MICROS}


def kinds_change(mode: str, index: int = 0):
    rec = load(mode)[index]
    return KINDS.reader(row_columns(row_record(rec.schema))), rec


@pytest.mark.parametrize("mode", sorted(EXPECTED))
def test_every_temporal_and_numeric_kind_reads_as_its_meaning_in_every_debezium_mode(mode):
    rows, rec = kinds_change(mode)
    assert rows.problems == ()
    row = rec.value.get("after", rec.value)
    fields = rows.apply(row).fields
    assert fields == EXPECTED[mode]
    assert all(type(fields[k]) is type(EXPECTED[mode][k]) for k in fields)  # a date is not a datetime


def test_the_encodings_really_differ_between_the_recorded_modes():
    """The point of reading by writer schema: one column, three encodings."""
    encodings = {
        mode: (row_columns(row_record(load(mode)[0].schema))["n"].describe(),
               row_columns(row_record(load(mode)[0].schema))["ts"].describe())
        for mode in ("adaptive-precise", "micros-double", "connect-string")
    }  # fmt: skip
    assert encodings == {
        "adaptive-precise": ("bytes (org.apache.kafka.connect.data.Decimal)", "long (io.debezium.time.MicroTimestamp)"),
        "micros-double": ("double", "long (io.debezium.time.MicroTimestamp)"),
        "connect-string": ("string", "long (org.apache.kafka.connect.data.Timestamp)"),
    }


def test_an_unwrapped_stream_gives_upserts_then_a_delete_at_its_lsns():
    normaliser = Normaliser(lambda table: KINDS)
    changes = [normaliser("kinds", r.value, "k-1", r.schema_id, r.schema) for r in load("unwrapped")]
    assert [c.op for c in changes] == [Op.UPSERT, Op.UPSERT, Op.DELETE]  # the rewritten delete: __deleted=true
    assert all(c.position.lsn for c in changes)  # add.fields=lsn writes __lsn
    assert changes[0].position.lsn < changes[1].position.lsn < changes[2].position.lsn
    assert changes[1].fields["n"] == Decimal("99.99") and changes[1].fields["txt"] == "changed"


# --- the local CRM schema as Debezium writes it ------------------------------------------


def test_the_recorded_crm_rows_map_with_timestamptz_and_not_null_columns():
    """The regression of the issue: ``last_modified_date timestamptz`` arrives as a ZonedTimestamp
    string, which a mapping that fixed 'micros' for the column quarantined on every row."""
    changes = {r.table: normalise(r.table, r.value, r.key["id"], r.schema) for r in load("crm")}
    opp = changes["opportunity"].fields
    assert opp["last_modified_at"] == dt.datetime(2026, 12, 7, 10, 16, tzinfo=UTC)
    assert opp["created_at"] == dt.datetime(2026, 12, 7, 9, 15, 30, 123456, tzinfo=UTC)
    assert opp["close_date"] == dt.date(2026, 12, 31) and opp["amount"] == Decimal("199.80")
    assert opp["stage"] == "CLOSED_WON" and opp["contract_term_months"] == 12 and opp["deleted"] is False
    account = changes["account"].fields  # last_modified_date is a timestamp without zone there
    assert account["last_modified_at"] == dt.datetime(2026, 12, 7, 10, 15, 30, 500000, tzinfo=UTC)
    assert changes["opportunity_line_item"].fields["quantity"] == Decimal("2.0000")
    assert changes["pricebook_entry"].fields["currency"] == "EUR"


def test_a_not_null_column_is_a_plain_type_in_the_writer_schema_and_reads_the_same():
    opp = next(r for r in load("crm") if r.table == "opportunity")
    columns = row_columns(row_record(opp.schema))
    assert columns["stage_name"] == WriterColumn("stage_name", "string", None, None, nullable=False)
    assert columns["account_id"].nullable


# --- what cannot be read, said before any row is read ------------------------------------


def test_a_column_whose_writer_type_cannot_become_the_meaning_is_a_problem_naming_both():
    columns = row_columns(row_record(load("adaptive-precise")[0].schema))
    mapping = TableMapping({"table": "kinds", "version": 3, "fields": {"due": {"column": "b", "as": "date"}}})
    rows = mapping.reader(columns)
    assert rows.problems == ("column 'b': writer type boolean cannot become date (needed for due)",)
    with pytest.raises(SyncError) as err:
        rows.apply({"id": "k-1", "b": True})
    assert err.value.reason is ReasonCode.SCHEMA_MISMATCH and "kinds (mapping v3)" in err.value.detail


def test_a_missing_column_is_a_problem_unless_the_rule_says_it_is_optional():
    columns = row_columns(row_record(load("adaptive-precise")[0].schema))
    spec = {"table": "kinds", "version": 1, "fields": {"region": "region"}}
    assert TableMapping(spec).reader(columns).problems == ("column 'region' for region is missing",)
    optional = {**spec, "fields": {"region": {"column": "region", "optional": True, "default": "EMEA"}}}
    rows = TableMapping(optional).reader(columns)
    assert rows.problems == () and rows.apply({"id": "k-1"}).fields == {"region": "EMEA"}


def test_a_missing_id_column_is_a_problem():
    columns = {"name": writer_column("name", "string")}
    assert TableMapping({"table": "x", "version": 1, "fields": {}}).reader(columns).problems == (
        "column 'id' (the row id) is missing",
    )


@pytest.mark.parametrize(
    ("avro_type", "meaning"),
    [
        ({"type": "int", "connect.name": "io.debezium.time.Date"}, Meaning.TIMESTAMP),
        ({"type": "long", "connect.name": "io.debezium.time.MicroTimestamp"}, Meaning.DATE),
        ({"type": "string", "connect.name": "io.debezium.time.ZonedTimestamp"}, Meaning.DECIMAL),
        ("string", Meaning.INTEGER),
        ("boolean", Meaning.TEXT),
        ({"type": "bytes", "connect.name": "org.apache.kafka.connect.data.Decimal"}, Meaning.DECIMAL),  # no scale
    ],
    ids=["date-as-timestamp", "timestamp-as-date", "zoned-as-decimal", "string-as-integer", "bool-as-text", "no-scale"],
)
def test_writer_types_that_cannot_carry_a_meaning_are_unreadable(avro_type, meaning):
    with pytest.raises(Unreadable):
        reader(writer_column("c", ["null", avro_type]), meaning)


def test_a_whole_double_reads_as_an_integer_and_a_fraction_is_refused():
    """Salesforce number fields (a contract term in months) are doubles on the wire."""
    read = reader(writer_column("c", ["null", "double"]), Meaning.INTEGER)
    assert read is not None and read(12.0) == 12
    with pytest.raises(ValueError, match="not a whole number"):
        read(12.5)


@pytest.mark.parametrize(
    ("avro_type", "value", "meaning", "expected"),
    [
        ({"type": "long", "connect.name": "io.debezium.time.NanoTimestamp"}, 1_796_638_530_123_456_789,
         Meaning.TIMESTAMP, dt.datetime(2026, 12, 7, 10, 15, 30, 123457, tzinfo=UTC)),
        ({"type": "long", "connect.name": "io.debezium.time.NanoTime"}, 49_530_123_456_000, Meaning.TIME,
         dt.time(13, 45, 30, 123456)),
        ({"type": "bytes", "connect.name": "org.apache.kafka.connect.data.Decimal",
          "connect.parameters": {"scale": "4"}}, (25_000).to_bytes(2, "big", signed=True), Meaning.DECIMAL,
         Decimal("2.5000")),
        ("long", 1234567890123, Meaning.TEXT, "1234567890123"),
        ("string", "2026-12-07T10:15:30+01:00", Meaning.TIMESTAMP, dt.datetime(2026, 12, 7, 9, 15, 30, tzinfo=UTC)),
    ],
    ids=["nano-timestamp", "nano-time", "decimal-bytes-without-logical-type", "integer-id-as-text", "iso-text"],
)  # fmt: skip
def test_kinds_postgres_does_not_write_read_by_the_same_rules(avro_type, value, meaning, expected):
    """Other Debezium connectors (and a Connect Decimal without its logical type) use these encodings."""
    read = reader(writer_column("c", avro_type), meaning)
    assert (read(value) if read else value) == expected


# --- input too large to convert: refused before it costs anything (review item 5) -----------------


class _OneSchema:
    """What ``SchemaResolver`` needs of the registry client: one writer schema, id 1."""

    def __init__(self, schema: dict) -> None:
        self.schema_str = json.dumps(schema)

    async def get_schema(self, schema_id: int):
        return self


@pytest.mark.timeout(10)  # the quadratic conversion this guards against took ~100 s for 1 MB
def test_a_megabyte_decimal_is_refused_by_its_length_without_being_converted():
    rec = load("adaptive-precise")[0]
    envelope = rec.value | {"after": rec.value["after"] | {"n": b"\x01" + b"\x00" * 1_000_000}}
    raw = fastavro.parse_schema(_without_decimal_types(rec.schema))  # bytes as bytes, as a producer may send
    body = io.BytesIO()
    fastavro.schemaless_writer(body, raw, envelope)
    decoder = AvroDecoder(SchemaResolver(_OneSchema(rec.schema)), raw_decimals=True)
    started = time.perf_counter()
    decoded = asyncio.run(decoder.decode(wire.header(1) + body.getvalue()))
    assert isinstance(decoded.value["after"]["n"], bytes)  # not converted while decoding
    rows = KINDS.reader(row_columns(row_record(decoded.schema)))
    with pytest.raises(SyncError) as err:
        rows.apply(decoded.value["after"])
    elapsed = time.perf_counter() - started
    assert err.value.reason is ReasonCode.MAPPING_ERROR and "more than 38 digits" in err.value.detail
    print(f"1 MB decimal refused in {elapsed * 1000:.1f} ms")  # ~10 ms here; 100 s before


def test_a_decimal_at_its_full_precision_still_reads_with_raw_decimal_decoding():
    rec = load("adaptive-precise")[0]
    big = rec.value | {"after": rec.value["after"] | {"n": Decimal("9" * 16 + ".99")}}
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(rec.schema), big)
    decoded = asyncio.run(
        AvroDecoder(SchemaResolver(_OneSchema(rec.schema)), raw_decimals=True).decode(wire.header(1) + body.getvalue())
    )
    assert isinstance(decoded.value["after"]["n"], bytes)
    rows = KINDS.reader(row_columns(row_record(decoded.schema)))
    assert rows.apply(decoded.value["after"]).fields["n"] == Decimal("9" * 16 + ".99")
