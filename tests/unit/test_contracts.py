"""Contracts in avro/ are indexed by full name and expand to self-contained, parseable schemas."""

from __future__ import annotations

import json

import fastavro
import pytest

from app.contracts import ContractError, ContractIndex, default_index


@pytest.mark.parametrize("name", sorted(default_index().raw))
def test_every_contract_expands_and_parses(name):
    fastavro.parse_schema(default_index().expanded(name))


def test_a_type_used_twice_is_defined_once_then_referenced(tmp_path):
    (tmp_path / "A.avsc").write_text(
        json.dumps({"type": "record", "name": "A", "namespace": "x", "fields": [{"name": "v", "type": "int"}]})
    )
    (tmp_path / "B.avsc").write_text(
        json.dumps(
            {
                "type": "record",
                "name": "B",
                "namespace": "x",
                "fields": [{"name": "a1", "type": "A"}, {"name": "a2", "type": ["null", "x.A"], "default": None}],
            }
        )
    )
    expanded = ContractIndex(tmp_path).expanded("x.B")
    assert expanded["fields"][0]["type"]["name"] == "A"
    assert expanded["fields"][1]["type"] == ["null", "x.A"]
    fastavro.parse_schema(expanded)


def test_unknown_reference_is_a_contract_error(tmp_path):
    (tmp_path / "B.avsc").write_text(
        json.dumps({"type": "record", "name": "B", "fields": [{"name": "a", "type": "Missing"}]})
    )
    with pytest.raises(ContractError, match="Missing"):
        ContractIndex(tmp_path).expanded("B")
