"""Debezium change events, as a consumer decodes them, become one canonical ``RowChange`` shape."""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any

import fastavro
import pytest

from app.cdc import envelope as cdc_envelope
from app.cdc.envelope import key_id
from app.contracts import default_index
from app.domain.changes import Op, Position
from app.domain.errors import ReasonCode, SyncError
from app.sim import debezium as sim


def decoded(name: str, value: dict[str, Any]) -> dict[str, Any]:
    """``value`` written and read back with contract ``name``: the types a real consumer sees."""
    schema = fastavro.parse_schema(default_index().expanded(name))
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, value)
    buf.seek(0)
    return fastavro.schemaless_reader(buf, schema)


def normalise(table: str, value: dict[str, Any] | None, key: str | None = None):
    """``normalise`` with the simulator's writer schema of the value's form (raw or unwrapped)."""
    form = "Unwrapped" if isinstance(value, dict) and ("__op" in value or "__deleted" in value) else "Envelope"
    return cdc_envelope.normalise(table, value, key, default_index().expanded(f"crm.public.{table}.{form}"))


def envelope(table: str, event: dict[str, Any]) -> dict[str, Any]:
    return decoded(f"crm.public.{table}.Envelope", event)


def unwrapped(table: str, value: dict[str, Any]) -> dict[str, Any]:
    return decoded(f"crm.public.{table}.Unwrapped", value)


def opp(stage: str = "Closed Won", **overrides) -> dict[str, Any]:
    return sim.opportunity_row("006-1", "001-1", stage, Decimal("250"), name="ACME expansion", **overrides)


def assert_position_of(change, event):
    assert change.position == Position(event["source"]["lsn"], event["source"]["ts_ms"])


# --- raw envelope -----------------------------------------------------------------


def test_an_insert_is_an_upsert_of_the_after_row_at_its_source_position():
    event = envelope("opportunity", sim.create("opportunity", opp(), sim.Lsn()))
    change = normalise("opportunity", event, key_id(sim.key("006-1")))
    assert change.table == "opportunity" and change.op is Op.UPSERT and change.row_id == "006-1"
    assert change.fields["stage"] == "CLOSED_WON" and change.fields["amount"] == Decimal("250.00")
    assert change.unavailable == frozenset() and change.snapshot is False
    assert change.position.lsn == sim.Lsn().next()
    assert_position_of(change, event)


def test_an_update_is_an_upsert_of_the_after_row_not_the_before_row():
    lsns = sim.Lsn()
    event = envelope("opportunity", sim.update("opportunity", opp("Negotiation"), opp("Closed Won"), lsns))
    change = normalise("opportunity", event)
    assert change.op is Op.UPSERT and change.fields["stage"] == "CLOSED_WON" and change.snapshot is False
    assert_position_of(change, event)


def test_an_update_without_a_before_image_is_still_an_upsert():
    event = envelope("opportunity", sim.update("opportunity", None, opp(), sim.Lsn()))
    change = normalise("opportunity", event)
    assert change.op is Op.UPSERT and change.row_id == "006-1"


def test_a_snapshot_read_is_an_upsert_marked_as_snapshot():
    event = envelope("opportunity", sim.snapshot_read("opportunity", opp(), sim.Lsn()))
    change = normalise("opportunity", event)
    assert change.op is Op.UPSERT and change.snapshot is True and change.fields["stage"] == "CLOSED_WON"
    assert_position_of(change, event)


def test_a_delete_is_read_from_the_before_row():
    event = envelope("opportunity", sim.delete("opportunity", opp(), sim.Lsn()))
    change = normalise("opportunity", event, "006-1")
    assert change.op is Op.DELETE and change.row_id == "006-1" and change.snapshot is False
    assert change.fields["name"] == "ACME expansion"
    assert_position_of(change, event)


def test_a_delete_without_a_before_row_is_a_delete_of_the_key_with_empty_fields():
    event = envelope("opportunity", sim.delete("opportunity", None, sim.Lsn()))
    change = normalise("opportunity", event, key_id(sim.key("006-1")))
    assert change.op is Op.DELETE and change.row_id == "006-1" and change.fields == {}
    assert change.unavailable == frozenset()
    assert_position_of(change, event)


def test_a_delete_without_a_before_row_or_a_key_is_not_a_cdc_event():
    event = envelope("opportunity", sim.delete("opportunity", None, sim.Lsn()))
    with pytest.raises(SyncError) as err:
        normalise("opportunity", event, None)
    assert err.value.reason is ReasonCode.NOT_A_CDC_EVENT


def test_a_truncate_is_reported_as_a_truncate_with_no_row():
    event = envelope("opportunity", sim.truncate("opportunity", sim.Lsn()))
    change = normalise("opportunity", event, None)
    assert change.op is Op.TRUNCATE and change.row_id == "" and change.fields == {}
    assert_position_of(change, event)


def test_a_tombstone_is_nothing_to_apply():
    assert normalise("opportunity", None, "006-1") is None


def test_an_unknown_op_is_not_a_cdc_event():
    event = sim.create("opportunity", opp(), sim.Lsn())
    event = envelope("opportunity", {**event, "op": "m"})
    with pytest.raises(SyncError) as err:
        normalise("opportunity", event)
    assert err.value.reason is ReasonCode.NOT_A_CDC_EVENT and "'m'" in err.value.detail


def test_a_dict_that_is_neither_envelope_nor_unwrapped_row_is_not_a_cdc_event():
    with pytest.raises(SyncError) as err:
        normalise("opportunity", decoded("crm.public.opportunity.Value", opp()))
    assert err.value.reason is ReasonCode.NOT_A_CDC_EVENT


def test_a_line_item_envelope_maps_to_line_fields():
    row = sim.line_row("00k-1", "006-1", "01t-1", "3", "89.99")
    event = envelope("opportunity_line_item", sim.create("opportunity_line_item", row, sim.Lsn()))
    change = normalise("opportunity_line_item", event)
    assert change.row_id == "00k-1" and change.fields["opportunity_id"] == "006-1"
    assert change.fields["quantity"] == Decimal("3") and change.fields["total_price"] == Decimal("269.97")


# --- unwrapped (ExtractNewRecordState) form ---------------------------------------


def test_an_unwrapped_row_is_an_upsert_at_its_added_source_position():
    value = unwrapped("opportunity", sim.unwrapped("opportunity", opp(), "c", lsn=4711, ts_ms=1_795_774_530_000))
    change = normalise("opportunity", value)
    assert change.op is Op.UPSERT and change.row_id == "006-1" and change.snapshot is False
    assert change.position == Position(4711, 1_795_774_530_000)
    assert change.fields["stage"] == "CLOSED_WON"
    assert not any(name.startswith("__") for name in change.fields)


def test_an_unwrapped_row_marked_deleted_is_a_delete():
    value = unwrapped("opportunity", sim.unwrapped("opportunity", opp(), "u", 4711, 1, deleted=True))
    assert value["__deleted"] == "true"
    change = normalise("opportunity", value)
    assert change.op is Op.DELETE and change.row_id == "006-1"


def test_an_unwrapped_delete_op_is_a_delete():
    value = unwrapped("opportunity", sim.unwrapped("opportunity", opp(), "d", 4711, 1))
    assert normalise("opportunity", value).op is Op.DELETE


def test_an_unwrapped_snapshot_read_is_an_upsert_marked_as_snapshot():
    value = unwrapped("opportunity", sim.unwrapped("opportunity", opp(), "r", 4711, 1))
    change = normalise("opportunity", value)
    assert change.op is Op.UPSERT and change.snapshot is True


def test_an_unwrapped_row_without_a_source_lsn_is_positioned_by_its_timestamp():
    value = {**sim.unwrapped("opportunity", opp(), "u", 4711, 1_795_774_530_000), "__source_lsn": None}
    change = normalise("opportunity", unwrapped("opportunity", value))
    assert change.position == Position(None, 1_795_774_530_000)
    assert change.position.label() == "ts:1795774530000"


# --- positions --------------------------------------------------------------------


def without_lsn(event: dict[str, Any]) -> dict[str, Any]:
    return {**event, "source": {**event["source"], "lsn": None}}


def test_a_later_lsn_is_after_an_earlier_one_and_not_the_other_way_round():
    lsns = sim.Lsn()
    first = normalise("opportunity", envelope("opportunity", sim.create("opportunity", opp(), lsns)))
    second = normalise("opportunity", envelope("opportunity", sim.update("opportunity", None, opp(), lsns)))
    assert second.position.lsn > first.position.lsn
    assert second.position.after(first.position) and not first.position.after(second.position)
    assert first.position.after(None)


def test_without_an_lsn_the_commit_timestamp_orders_changes():
    lsns = sim.Lsn()
    first = envelope("opportunity", without_lsn(sim.create("opportunity", opp(), lsns)))
    second = envelope("opportunity", without_lsn(sim.update("opportunity", None, opp(), lsns)))
    a, b = normalise("opportunity", first).position, normalise("opportunity", second).position
    assert a.lsn is None and b.lsn is None and b.ts_ms > a.ts_ms
    assert b.after(a) and not a.after(b)


def test_equal_positions_are_not_after_each_other():
    event = sim.create("opportunity", opp(), sim.Lsn())
    with_lsn = normalise("opportunity", envelope("opportunity", event)).position
    assert not with_lsn.after(Position(with_lsn.lsn, with_lsn.ts_ms))
    ts_only = normalise("opportunity", envelope("opportunity", without_lsn(event))).position
    assert not ts_only.after(Position(None, ts_only.ts_ms))


def test_the_same_lsn_is_not_after_itself_even_with_a_later_timestamp():
    assert not Position(100, 2_000).after(Position(100, 1_000))


# --- keys -------------------------------------------------------------------------


def test_the_key_id_is_the_rows_id_and_absent_without_one():
    assert key_id(decoded("crm.public.opportunity.Key", sim.key("006-1"))) == "006-1"
    assert key_id(None) is None
    assert key_id({"id": None}) is None
