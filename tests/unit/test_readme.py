"""The README opens with the two commands CI relies on; the docs document every setting and the taxonomy."""

from __future__ import annotations

import re

from app.settings import REPO_ROOT, Settings

README = (REPO_ROOT / "README.md").read_text()
DOCS = REPO_ROOT / "docs"


def test_every_setting_is_in_the_configuration_table():
    table = (DOCS / "configuration.md").read_text()
    for name in Settings.model_fields:
        assert f"`CRM_ERP_{name.upper()}`" in table, name


def test_readme_opens_with_the_demo_and_test_commands_and_ci_calls_the_test_one():
    head = README.split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in head.strip().splitlines()]
    assert commands == ["make demo", "make test"]
    assert "make test" in (REPO_ROOT / ".ci" / "run").read_text()


def test_the_readme_stays_a_page_for_users():
    assert len(README.splitlines()) <= 300


def test_the_exception_taxonomy_table_matches_the_code():
    from app.domain.exceptions.taxonomy import markdown_table

    assert markdown_table() in (DOCS / "operations.md").read_text()


def test_every_relative_link_in_the_readme_and_docs_names_a_file_that_exists():
    for page in [REPO_ROOT / "README.md", *DOCS.glob("*.md")]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name}: {target}"
