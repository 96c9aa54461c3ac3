"""The dependency direction of GUIDE.md: pure domain logic never reaches for Kafka, HTTP or Faust."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from app.settings import REPO_ROOT

FORBIDDEN_IN_PURE = (
    "faust",
    "confluent_kafka",
    "aiokafka",
    "httpx",
    "rocksdict",
    "app.agents",
    "app.state",
    "app.ops",
    "app.serde",
    "app.runtime",
    "app.faust_app",
    "app.platform",
)
PURE = sorted((REPO_ROOT / "app" / "domain").glob("*.py")) + sorted((REPO_ROOT / "app" / "cdc").glob("*.py"))


def imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", PURE, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_domain_and_cdc_modules_import_no_io_or_framework(path: Path):
    bad = {n for n in imports(path) for f in FORBIDDEN_IN_PURE if n == f or n.startswith(f + ".")}
    assert not bad, f"{path.name} imports {sorted(bad)}"


def test_nothing_imports_the_agents_but_the_worker():
    for path in (REPO_ROOT / "app").rglob("*.py"):
        if "agents" in path.parts or path.name == "faust_app.py":
            continue
        assert not {n for n in imports(path) if n.startswith("app.agents")}, path
