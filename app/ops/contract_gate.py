"""The CI gate on contracts: every top-level contract whose (expanded) schema changed since a base
commit must stay compatible with its previous committed version at the catalog's level.

A change to a shared type (say ``Address``) changes every contract that embeds it, so contracts
are compared expanded, not file by file.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from app.catalog import TopicSpec
from app.contracts import ContractIndex, compat
from app.contracts.lint import new_fields_without_default
from app.settings import REPO_ROOT


def default_base(repo: Path = REPO_ROOT) -> str | None:
    """The merge base with origin/main; on main itself (CI's clean clone), the previous commit."""

    def git(*args: str) -> str | None:
        done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else None

    head = git("rev-parse", "HEAD")
    base = git("merge-base", "HEAD", "origin/main")
    if base and base != head:
        return base
    return git("rev-parse", "HEAD~1")


def index_at(ref: str, repo: Path = REPO_ROOT) -> ContractIndex | None:
    """The contracts as committed at ``ref`` (None when ``avro/`` did not exist there)."""
    done = subprocess.run(["git", "archive", ref, "avro"], cwd=repo, capture_output=True, check=False)
    if done.returncode != 0:
        return None
    tmp = Path(tempfile.mkdtemp(prefix="contracts-"))
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as tar:
        tar.extractall(tmp, filter="data")
    return ContractIndex(tmp / "avro")


@dataclass(frozen=True)
class GateResult:
    contract: str
    level: str
    problems: tuple[str, ...]


def gate(old: ContractIndex, new: ContractIndex, specs: list[TopicSpec] | tuple[TopicSpec, ...]) -> list[GateResult]:
    """One result per changed top-level contract; problems empty when the change is compatible."""
    levels: dict[str, str] = {}
    for spec in specs:
        for contract in (spec.value_contract, spec.key_contract):
            if contract:
                levels.setdefault(contract, spec.compatibility)
    results: list[GateResult] = []
    for contract, level in sorted(levels.items()):
        if contract not in old.raw or contract not in new.raw:
            continue  # a new contract has no previous version to be compatible with
        before, after = old.expanded(contract), new.expanded(contract)
        if before == after:
            continue
        problems = [str(p) for p in compat.check(before, after, level)]
        problems += [
            f"new field {name!r} has no default"
            for name in new_fields_without_default(old.raw[contract], new.raw[contract])
        ]
        results.append(GateResult(contract, level, tuple(problems)))
    return results
