"""The CI gate: changed contracts are checked, expanded, against their previous committed version."""

from __future__ import annotations

import json
import shutil
import subprocess

from app.catalog import default_catalog
from app.cli import main
from app.contracts import ContractIndex, default_index
from app.ops.contract_gate import gate, index_at


def _copy_contracts(tmp_path, edit=None) -> ContractIndex:
    root = tmp_path / "avro"
    shutil.copytree(default_index().root, root)
    if edit:
        path, change = edit
        schema = json.loads((root / path).read_text())
        change(schema)
        (root / path).write_text(json.dumps(schema))
    return ContractIndex(root)


def test_unchanged_contracts_pass_the_gate(tmp_path):
    assert gate(default_index(), _copy_contracts(tmp_path), default_catalog()) == []


def test_a_shared_type_change_is_checked_in_every_contract_that_embeds_it(tmp_path):
    # a required field on Address breaks every command that carries an address
    edit = ("canonical/Address.avsc", lambda s: s["fields"].append({"name": "region", "type": "string", "doc": "r"}))
    results = gate(default_index(), _copy_contracts(tmp_path, edit), default_catalog())
    failing = {r.contract for r in results if r.problems}
    assert "io.crmerpsync.erp.commands.SalesOrderCommand" in failing
    assert "io.crmerpsync.erp.commands.CustomerCommand" in failing
    assert all("region" in "\n".join(r.problems) for r in results if r.problems)


def test_an_optional_field_with_default_passes(tmp_path):
    edit = (
        "canonical/Address.avsc",
        lambda s: s["fields"].append({"name": "region", "type": ["null", "string"], "default": None, "doc": "r"}),
    )
    results = gate(default_index(), _copy_contracts(tmp_path, edit), default_catalog())
    assert results and all(not r.problems for r in results)


def test_index_at_reads_contracts_from_a_commit(tmp_path):
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    committed = index_at(head)
    assert committed is not None and "io.crmerpsync.sync.PipelineProbe" in committed.raw


def test_lint_passes_on_the_repository_contracts(capsys):
    assert main(["schemas", "lint"]) == 0
    assert "contracts clean" in capsys.readouterr().out
