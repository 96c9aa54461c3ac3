"""Salesforce change events (avro/salesforce/) through the adapter: partial updates, nulled fields,
multi-record events, ordering, gaps and overflows, bitmaps, compound addresses, loop suppression."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal
from typing import Any

import fastavro
import pytest

from app.cdc.salesforce import Gap, SalesforceNormaliser, field_names
from app.contracts import default_index
from app.domain.changes import Op, RowChange, keep
from app.domain.errors import ReasonCode, SyncError
from app.domain.orders.deal import Header
from app.sim import salesforce as sf

CLOSE = dt.date(2026, 12, 20)


def roundtrip(entity: str, value: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The event written and read back by its contract (what the worker decodes), and that schema."""
    schema = default_index().expanded(sf.contract(entity))
    parsed = fastavro.parse_schema(schema)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed, value)
    buf.seek(0)
    return fastavro.schemaless_reader(buf, parsed, None), schema


def normalise(entity: str, value: dict[str, Any], client: str | None = sf.INTEGRATION_CLIENT, schema_id: int = 1):
    decoded, schema = roundtrip(entity, value)
    return SalesforceNormaliser(client)(decoded, schema_id, schema)


@pytest.fixture
def tx() -> sf.Transactions:
    t = sf.Transactions(ts_ms=1_796_000_000_000)
    t.begin()
    return t


def test_a_create_is_the_whole_record_and_maps_to_the_canonical_fields(tx):
    fields = sf.opportunity("006A", "001A", "Prospecting", Decimal("1200.50"), CLOSE, Contract_Term_Months__c=12.0)
    [change] = normalise("Opportunity", sf.event(tx, "Opportunity", ["006A"], "CREATE", fields))
    assert (change.table, change.op, change.row_id, change.full, change.by_integration) == (
        "opportunity",
        Op.UPSERT,
        "006A",
        True,
        False,
    )
    header = Header.model_validate(change.fields)
    assert (header.stage, header.amount, header.close_date, header.contract_term_months) == (
        "PROSPECTING",
        Decimal("1200.50"),
        CLOSE,
        12,
    )
    assert change.unavailable == frozenset() and change.fields["tax_code"] is None  # absent on a create: null
    assert change.position.label() == f"scn:{tx.commit}.1"


def test_an_update_sends_only_what_changed_absent_is_kept_and_nulled_is_null(tx):
    created = sf.opportunity("006A", "001A", "Prospecting", Decimal("1200.50"), CLOSE, Tax_Code__c="STD")
    [first] = normalise("Opportunity", sf.event(tx, "Opportunity", ["006A"], "CREATE", created))
    tx.begin()
    update = sf.event(tx, "Opportunity", ["006A"], "UPDATE", {"StageName": "Closed Won"}, nulled=["Tax_Code__c"])
    [change] = normalise("Opportunity", update)
    assert not change.full and change.fields["stage"] == "CLOSED_WON" and change.fields["tax_code"] is None
    assert {"amount", "account_id", "close_date", "currency"} <= change.unavailable
    assert "tax_code" not in change.unavailable and "stage" not in change.unavailable
    merged = Header.model_validate(
        keep(change.fields, change.unavailable, Header.model_validate(first.fields).model_dump())
    )
    assert (merged.stage, merged.amount, merged.account_id, merged.tax_code) == (
        "CLOSED_WON",
        Decimal("1200.50"),
        "001A",
        None,
    )
    assert change.position.after(first.position) and not first.position.after(change.position)


def test_one_event_for_several_records_is_one_change_each(tx):
    value = sf.event(tx, "Opportunity", ["006A", "006B", "006C"], "UPDATE", {"StageName": "Closed Lost"})
    changes = normalise("Opportunity", value)
    assert [c.row_id for c in changes] == ["006A", "006B", "006C"]
    assert {c.fields["stage"] for c in changes} == {"CLOSED_LOST"} and len({c.position for c in changes}) == 1


def test_the_order_is_commit_time_then_commit_number_then_sequence(tx):
    a = normalise("Opportunity", sf.event(tx, "Opportunity", ["006A"], "UPDATE", {"Name": "a"}))[0].position
    b = normalise("Opportunity", sf.event(tx, "Opportunity", ["006A"], "UPDATE", {"Name": "b"}))[0].position
    tx.begin(at_ms=tx.ts_ms)  # another transaction committed in the same millisecond
    c = normalise("Opportunity", sf.event(tx, "Opportunity", ["006A"], "UPDATE", {"Name": "c"}))[0].position
    tx.begin(at_ms=tx.ts_ms + 5)
    d = normalise("Opportunity", sf.event(tx, "Opportunity", ["006A"], "UPDATE", {"Name": "d"}))[0].position
    assert b.after(a) and c.after(b) and d.after(c) and not a.after(a)
    assert (b.seq, c.seq) == (2, 1)  # c's own transaction starts again at 1


def test_a_delete_carries_only_the_ids_and_ends_the_record(tx):
    changes = normalise("OpportunityLineItem", sf.event(tx, "OpportunityLineItem", ["00kA", "00kB"], "DELETE", {}))
    assert [(c.op, c.row_id, c.full, c.fields) for c in changes] == [
        (Op.DELETE, "00kA", True, {}),
        (Op.DELETE, "00kB", True, {}),
    ]


@pytest.mark.parametrize("kind", ["GAP_CREATE", "GAP_UPDATE", "GAP_DELETE", "GAP_UNDELETE"])
def test_a_gap_event_names_its_records_for_a_resync(tx, kind):
    found = normalise("Opportunity", sf.gap(tx, "Opportunity", ["006A", "006B"], kind))
    assert isinstance(found, Gap) and not found.overflow
    assert (found.table, found.entity, found.record_ids, found.change_type) == (
        "opportunity",
        "Opportunity",
        ("006A", "006B"),
        kind,
    )
    assert found.resync_id == f"resync:Opportunity:{tx.key}:1"


def test_an_overflow_names_the_whole_entity(tx):
    found = normalise("OpportunityLineItem", sf.overflow(tx, "OpportunityLineItem"))
    assert isinstance(found, Gap) and found.overflow and found.record_ids == ()
    assert found.table == "opportunity_line_item"


def test_changes_from_the_integrations_own_api_client_are_flagged(tx):
    own = sf.event(tx, "Opportunity", ["006A"], "UPDATE", {"ERP_Order_Number__c": "SO-1"}, client=sf.INTEGRATION_CLIENT)
    other = sf.event(tx, "Opportunity", ["006A"], "UPDATE", {"Name": "x"}, client="some-other-app")
    assert normalise("Opportunity", own)[0].by_integration
    assert not normalise("Opportunity", other)[0].by_integration
    assert not normalise("Opportunity", own, client=None)[0].by_integration  # none configured


def test_pub_sub_bitmaps_name_fields_by_their_schema_position():
    positions = ("ChangeEventHeader", "Name", "Phone", "BillingAddress", "Tax_Code__c")
    nested = {3: ("Street", "City", "State", "PostalCode")}
    assert field_names(["0x12"], positions, nested) == {"Name", "Tax_Code__c"}  # bits 1 and 4
    assert field_names(["3-0x2", "Phone"], positions, nested) == {"BillingAddress.City", "Phone"}


def test_a_nulled_field_sent_as_a_bitmap_is_null_not_absent(tx):
    schema = default_index().expanded(sf.contract("Opportunity"))
    position = next(i for i, f in enumerate(schema["fields"]) if f["name"] == "Tax_Code__c")
    value = sf.event(tx, "Opportunity", ["006A"], "UPDATE", {"Name": "x"})
    value["ChangeEventHeader"]["nulledFields"] = [hex(1 << position)]
    [change] = normalise("Opportunity", value)
    assert change.fields["tax_code"] is None and "tax_code" not in change.unavailable
    assert "payment_terms" in change.unavailable


def test_a_compound_address_updated_in_part_keeps_its_other_parts(tx):
    [created] = normalise("Account", sf.event(tx, "Account", ["001A"], "CREATE", sf.account("001A", "ACME", "C-1")))
    assert created.fields["bill_to"] == {
        "street": "Friedrichstraße 100",
        "city": "Berlin",
        "postal_code": "10117",
        "country": "DE",
    }
    tx.begin()
    moved = {"BillingAddress": {"Street": None, "City": "Hamburg", "State": None, "PostalCode": None,
                                "Country": None, "StateCode": None, "CountryCode": None}}  # fmt: skip
    [change] = normalise("Account", sf.event(tx, "Account", ["001A"], "UPDATE", moved))
    kept = keep(change.fields, change.unavailable, created.fields)
    assert kept["bill_to"] == {
        "street": "Friedrichstraße 100",
        "city": "Hamburg",
        "postal_code": "10117",
        "country": "DE",
    }
    assert kept["ship_to"] == created.fields["ship_to"] and kept["name"] == "ACME"


def test_an_entity_without_a_mapping_or_a_foreign_value_is_refused_with_its_reason(tx):
    with pytest.raises(SyncError) as err:
        SalesforceNormaliser(None)({"ChangeEventHeader": {**sf.gap(tx, "Case", ["500A"])["ChangeEventHeader"]}}, 1, {})
    assert err.value.reason is ReasonCode.MAPPING_ERROR and "Case" in str(err.value)
    with pytest.raises(SyncError) as err:
        SalesforceNormaliser(None)({"op": "c"}, 1, {})
    assert err.value.reason is ReasonCode.NOT_A_CDC_EVENT


def test_the_same_event_redelivered_is_the_same_change(tx):
    value = sf.event(
        tx, "OpportunityLineItem", ["00kA"], "CREATE", sf.line("006A", "01tA", Decimal(2), Decimal("10.00"))
    )
    first: RowChange = normalise("OpportunityLineItem", value)[0]
    again: RowChange = normalise("OpportunityLineItem", value)[0]
    assert first == again and not again.position.after(first.position)


@pytest.mark.parametrize("entity", sf.ENTITIES)
def test_sources_check_reads_every_documented_event_schema(entity):
    from app.serde.source_schemas import judge_salesforce

    verdict = judge_salesforce(
        entity, f"salesforce.{entity}ChangeEvent-value", 1, 1, default_index().expanded(sf.contract(entity))
    )
    assert verdict.problems == ()


def test_sources_check_names_what_a_connector_schema_lacks():
    from app.serde.source_schemas import judge_salesforce

    schema = default_index().expanded(sf.contract("Opportunity"))
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "StageName"]
    header = schema["fields"][0]["type"]
    header["fields"] = [f for f in header["fields"] if f["name"] != "commitNumber"]
    verdict = judge_salesforce("Opportunity", "s-value", 2, 7, schema)
    assert verdict.problems == ("ChangeEventHeader has no 'commitNumber'", "column 'StageName' for stage is missing")
