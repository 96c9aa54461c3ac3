"""The README documents every setting and opens with the two commands CI relies on."""

from __future__ import annotations

from app.settings import REPO_ROOT, Settings

README = (REPO_ROOT / "README.md").read_text()


def test_every_setting_is_in_the_configuration_table():
    for name in Settings.model_fields:
        assert f"`CRM_ERP_{name.upper()}`" in README, name


def test_readme_opens_with_the_demo_and_test_commands_and_ci_calls_the_test_one():
    head = README.split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in head.strip().splitlines()]
    assert commands == ["make demo", "make test"]
    assert "make test" in (REPO_ROOT / ".ci" / "run").read_text()


def test_the_exception_taxonomy_table_matches_the_code():
    from app.domain.taxonomy import markdown_table

    assert markdown_table() in README
