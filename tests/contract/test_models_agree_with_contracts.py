"""The pydantic models and the .avsc contracts agree field by field, type by type, default by default."""

from __future__ import annotations

import datetime as dt
import enum
import io
import random
import typing
from decimal import Decimal

import fastavro
import pytest
from fastavro.utils import generate_many

from app.contracts import default_index, named_types
from app.contracts.models import ContractModel, model

# the service's own contracts; CDC source rows (crm.*) are decoded as dicts and mapped declaratively
RECORDS = sorted(n for n, s in default_index().raw.items() if s["type"] == "record" and n.startswith("io.crmerpsync."))


def _encode(schema, record) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, record)
    return buf.getvalue()


@pytest.mark.parametrize("name", RECORDS)
def test_model_fields_and_defaults_are_the_contracts(name):
    contract = default_index().raw[name]
    fields = model(name).model_fields
    assert list(fields) == [f["name"] for f in contract["fields"]]
    for f in contract["fields"]:
        info = fields[f["name"]]
        if "default" in f:
            default = info.get_default(call_default_factory=True)
            assert (default.value if isinstance(default, enum.Enum) else default) == f["default"], f["name"]
        else:
            assert info.is_required(), f["name"]


def _fit(t, v, named, rng):
    """Random data from fastavro ignores decimal precision; bring every decimal into range."""
    if isinstance(t, str):
        return _fit(named[t], v, named, rng) if t in named else v
    if isinstance(t, list):
        if v is None:
            return None
        if isinstance(v, tuple):
            return (v[0], _fit(named[v[0]], v[1], named, rng))
        return _fit(next(b for b in t if b != "null"), v, named, rng)
    if t.get("logicalType") == "decimal":
        precision, scale = int(t["precision"]), int(t.get("scale", 0))
        return Decimal(rng.randrange(-(10**precision) + 1, 10**precision)).scaleb(-scale)
    kind = t.get("type")
    if kind == "record":
        return {f["name"]: _fit(f["type"], v[f["name"]], named, rng) for f in t["fields"]}
    if kind == "array":
        return [_fit(t["items"], x, named, rng) for x in v]
    if kind == "map":
        return {k: _fit(t["values"], x, named, rng) for k, x in v.items()}
    if isinstance(kind, (dict, list)):
        return _fit(kind, v, named, rng)
    return v


def _plain(v):
    if isinstance(v, tuple):
        return _plain(v[1])
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


@pytest.mark.parametrize("name", RECORDS)
def test_random_valid_records_survive_the_model_unchanged(name):
    expanded = default_index().expanded(name)
    schema = fastavro.parse_schema(expanded)
    named, rng, m = named_types(expanded), random.Random(name), model(name)
    for generated in generate_many(schema, 20):
        # what a consumer decodes (logical types as Decimal / datetime / date, union branches named)
        raw = io.BytesIO(_encode(schema, generated))
        decoded = _fit(expanded, fastavro.schemaless_reader(raw, schema, None, return_record_name=True), named, rng)
        instance = m.model_validate(_plain(decoded))
        assert _encode(schema, instance.to_avro()) == _encode(schema, decoded)


def test_decimal_precision_and_scale_come_from_the_contract():
    line = model("io.crmerpsync.canonical.OpportunityLineItem")
    contract = next(f for f in default_index().raw[line.__avro_name__]["fields"] if f["name"] == "total_price")
    line_fields = {"id": "l1", "product_id": "p1", "sku": "S", "quantity": Decimal("1"), "unit_price": Decimal("1")}
    too_fine = Decimal(1).scaleb(-contract["type"]["scale"] - 1)
    with pytest.raises(ValueError, match="decimal"):
        line.model_validate({**line_fields, "total_price": too_fine})


def test_timestamps_are_datetimes_and_enums_have_the_contract_symbols():
    opp = model("io.crmerpsync.canonical.Opportunity")
    stage = opp.model_fields["stage"].annotation
    assert [s.value for s in stage] == default_index().raw["io.crmerpsync.canonical.OpportunityStage"]["symbols"]
    hints = typing.get_type_hints(model("io.crmerpsync.sync.CommandEnvelope"))
    assert hints["issued_at"] is dt.datetime
    assert issubclass(opp, ContractModel)
