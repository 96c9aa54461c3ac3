"""What the service imports is declared; what it patches is pinned exactly; installs come from the lock.

The worker patches private internals of faust-streaming, mode-streaming and aiokafka (tests/unit pin
the behaviour it relies on against the installed versions). A range would let a fresh venv or the
Docker image resolve a newer release those tests never saw.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions

from packaging.requirements import Requirement

from app.settings import REPO_ROOT

PROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
RUNTIME = [Requirement(r) for r in PROJECT["dependencies"]]
DEV = [Requirement(r) for r in PROJECT["optional-dependencies"]["dev"]]
PATCHED = {"faust-streaming", "mode-streaming", "aiokafka"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _locked(name: str) -> dict[str, str]:
    pins = {}
    for line in (REPO_ROOT / name).read_text().splitlines():
        if m := re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line):
            pins[_norm(m.group(1))] = m.group(2)
    return pins


def _imported_packages() -> set[str]:
    names = set()
    for path in (REPO_ROOT / "app").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n != "app"}


def test_every_package_the_service_imports_is_declared_as_a_dependency():
    owners = packages_distributions()
    declared = {_norm(r.name) for r in RUNTIME} | {_norm(r.name) for r in DEV}
    undeclared = {
        m: owners.get(m) for m in _imported_packages() if not {_norm(d) for d in owners.get(m, [m])} & declared
    }
    assert not undeclared, undeclared


def test_the_packages_whose_internals_are_patched_are_pinned_exactly():
    pins = {_norm(r.name): str(r.specifier) for r in RUNTIME if _norm(r.name) in PATCHED}
    assert set(pins) == PATCHED
    assert all(spec.startswith("==") and "," not in spec for spec in pins.values()), pins


def test_the_lock_files_pin_every_dependency_at_a_version_the_project_allows():
    runtime, dev = _locked("requirements.lock"), _locked("requirements-dev.lock")
    for req in RUNTIME:
        assert req.specifier.contains(runtime[_norm(req.name)]), (req, runtime.get(_norm(req.name)))
    for req in DEV:
        assert req.specifier.contains(dev[_norm(req.name)]), (req, dev.get(_norm(req.name)))
    assert {k: v for k, v in dev.items() if k in runtime} == runtime  # the tests run what the image runs


def test_the_venv_and_the_image_install_from_the_lock_and_the_image_runs_unprivileged():
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "pip install -q -r requirements-dev.lock" in makefile and "--no-deps -e ." in makefile
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "pip install --no-cache-dir -r requirements.lock" in dockerfile
    [user] = re.findall(r"^USER (\S+)$", dockerfile, re.M)
    assert user not in ("root", "0")
