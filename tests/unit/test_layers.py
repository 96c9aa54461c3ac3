"""The dependency direction of GUIDE.md: pure domain logic never reaches for Kafka, HTTP or Faust."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
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
    "app.engine",
    "app.observe",
    "app.ops",
    "app.serde",
    "app.platform",
)
PURE = [
    *sorted((REPO_ROOT / "app" / "domain").rglob("*.py")),
    *sorted((REPO_ROOT / "app" / "readmodels").glob("*.py")),
    *sorted((REPO_ROOT / "app" / "cdc").glob("*.py")),
    *sorted((REPO_ROOT / "app" / "flows").glob("*.py")),  # run over Faust tables or dicts alike
]


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


DOMAIN_MAY_IMPORT = ("pydantic", "orjson", "app.domain")


@pytest.mark.parametrize(
    "path", sorted((REPO_ROOT / "app" / "domain").rglob("*.py")), ids=lambda p: str(p.relative_to(REPO_ROOT))
)
def test_the_domain_imports_only_the_standard_library_pydantic_and_orjson(path: Path):
    """Not even the service's own packages: the rules must not learn where their values go."""
    bad = {
        n
        for n in imports(path)
        if n.split(".")[0] not in sys.stdlib_module_names
        and not any(n == a or n.startswith(a + ".") for a in DOMAIN_MAY_IMPORT)
    }
    assert not bad, f"{path.relative_to(REPO_ROOT)} imports {sorted(bad)}"


def test_nothing_imports_the_agents_but_the_worker():
    for path in (REPO_ROOT / "app").rglob("*.py"):
        if "agents" in path.parts or path == REPO_ROOT / "app" / "engine" / "bootstrap.py":
            continue
        assert not {n for n in imports(path) if n.startswith("app.agents")}, path


FRAMEWORK = ("faust", "mode", "aiokafka")


def test_only_the_engine_imports_faust_mode_or_aiokafka():
    outside = {}
    for path in (REPO_ROOT / "app").rglob("*.py"):
        if "engine" in path.relative_to(REPO_ROOT / "app").parts:
            continue
        found = {n for n in imports(path) if n.split(".")[0] in FRAMEWORK}
        if found:
            outside[str(path.relative_to(REPO_ROOT))] = sorted(found)
    assert not outside, outside


def test_only_the_engine_consumes_from_kafka():
    """Operator jobs read topics through app/engine/reader.py (snapshots, subscriptions), never
    with a consumer of their own."""
    consumers = {"Consumer", "DeserializingConsumer", "AIOConsumer"}
    outside = {}
    for path in (REPO_ROOT / "app").rglob("*.py"):
        if "engine" in path.relative_to(REPO_ROOT / "app").parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("confluent_kafka"):
                found = {a.name for a in node.names} & consumers
                if found:
                    outside[str(path.relative_to(REPO_ROOT))] = sorted(found)
    assert not outside, outside


@pytest.mark.parametrize("package", ["engine", "observe", "serde", "cdc", "domain", "flows", "readmodels"])
def test_no_arrow_runs_from_the_run_time_packages_into_the_operator_jobs(package):
    back = {}
    for path in (REPO_ROOT / "app" / package).rglob("*.py"):
        found = {n for n in imports(path) if n == "app.ops" or n.startswith("app.ops.")}
        if found:
            back[str(path.relative_to(REPO_ROOT))] = sorted(found)
    assert not back, back


def test_importing_any_module_builds_nothing_and_raises_nothing():
    """One composition root (app/engine/bootstrap.py): importing a module reads no settings and
    opens nothing, so a setting the worker would refuse does not break an import (a retry tier
    without its topic used to raise when app.engine.guard was imported)."""
    code = (
        "import pkgutil, importlib, app\n"
        "import faust\n"
        "for m in pkgutil.walk_packages(app.__path__, 'app.'):\n"
        "    importlib.import_module(m.name)\n"
        "import gc\n"
        "apps = [o for o in gc.get_objects() if isinstance(o, faust.App)]\n"
        "assert not apps, apps\n"
    )
    env = {**os.environ, "CRM_ERP_RETRY_DELAYS": "no-such-tier=5"}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_worker_refuses_a_retry_tier_without_its_topic_when_it_is_built():
    from app.engine.bootstrap import bootstrap
    from app.settings import Settings

    with pytest.raises(ValueError, match="no-such-tier"):
        bootstrap(Settings(retry_delays="no-such-tier=5"))
