"""The offline checker (Apache avro's resolution rules + decimal parameters) on the evolution cases."""

from __future__ import annotations

import json

import pytest

from app.cli import main
from app.contracts import compat
from tests.support.evolution import CASES, Case


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_backward_and_forward_verdicts(case: Case):
    assert (not compat.check(case.old, case.new, "BACKWARD")) == case.backward
    assert (not compat.check(case.old, case.new, "FORWARD")) == case.forward
    assert (not compat.check(case.old, case.new, "FULL")) == (case.backward and case.forward)


@pytest.mark.parametrize("case", [c for c in CASES if not (c.backward and c.forward)], ids=lambda c: c.name)
def test_a_rejection_names_the_field_and_the_rule(case: Case):
    problems = compat.check(case.old, case.new, "FULL")
    text = "\n".join(str(p) for p in problems)
    assert problems and all(p.rule for p in problems)
    assert case.field in text or any(case.field in p.where for p in problems), text


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_cli_compat_exits_0_when_compatible_and_1_when_not(case: Case, tmp_path, capsys):
    old, new = tmp_path / "old.avsc", tmp_path / "new.avsc"
    old.write_text(json.dumps(case.old))
    new.write_text(json.dumps(case.new))
    code = main(["schemas", "compat", str(old), str(new), "--level", "BACKWARD"])
    out = capsys.readouterr().out
    assert code == (0 if case.backward else 1), out
    assert ("BACKWARD: compatible" in out) == case.backward
