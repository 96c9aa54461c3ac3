"""The contract house rules catch what they promise to catch."""

from __future__ import annotations

import json

from app.contracts import ContractIndex
from app.contracts.lint import lint


def _index(tmp_path, fields, kind="record", **extra) -> ContractIndex:
    d = tmp_path / "canonical"
    d.mkdir()
    schema = {"type": kind, "name": "X", "namespace": "io.crmerpsync.canonical", "doc": "x", **extra}
    if kind == "record":
        schema["fields"] = fields
    (d / "X.avsc").write_text(json.dumps(schema))
    return ContractIndex(tmp_path)


def rules(tmp_path, fields, **kw) -> set[str]:
    return {v.rule for v in lint(_index(tmp_path, fields, **kw))}


def test_float_money_undocumented_unowned_and_optional_without_default_are_violations(tmp_path):
    found = rules(
        tmp_path,
        [
            {"name": "amount", "type": "double", "doc": "d", "owner": "CRM"},
            {"name": "note", "type": ["null", "string"], "owner": "CRM", "doc": "n"},
            {"name": "name", "type": "string"},
        ],
    )
    assert found == {"float-money", "money-decimal", "optional-default", "doc", "owner"}


def test_enum_without_default_is_a_violation(tmp_path):
    assert rules(tmp_path, [], kind="enum", symbols=["A", "B"]) == {"enum-default"}


def test_wrong_namespace_for_the_folder_is_a_violation(tmp_path):
    d = tmp_path / "sync"
    d.mkdir()
    (d / "Y.avsc").write_text(
        json.dumps({"type": "enum", "name": "Y", "namespace": "other", "doc": "y", "symbols": ["A"], "default": "A"})
    )
    assert {v.rule for v in lint(ContractIndex(tmp_path))} == {"namespace"}
