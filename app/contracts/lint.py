"""House rules for contracts, beyond what Avro itself checks (``crm-erp-sync schemas lint``)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from app.contracts import ContractIndex, full_name

MONEY_WORDS = re.compile(r"(^|_)(amount|price|cost|revenue|credit_limit|balance)(_|$)(?!.*_id$)")
OWNERS = {"CRM", "ERP", "SERVICE"}
NAMESPACE_BY_DIR = {
    "canonical": "io.crmerpsync.canonical",
    "erp/commands": "io.crmerpsync.erp.commands",
    "erp/events": "io.crmerpsync.erp.events",
    "sync": "io.crmerpsync.sync",
}


@dataclass(frozen=True)
class Violation:
    contract: str
    where: str
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.contract} {self.where}: [{self.rule}] {self.detail}"


def _branches(t: Any) -> list[Any]:
    return t if isinstance(t, list) else [t]


def _is_float(t: Any) -> bool:
    return any(
        b in ("float", "double") or (isinstance(b, dict) and b.get("type") in ("float", "double")) for b in _branches(t)
    )


def _is_decimal(t: Any) -> bool:
    return any(isinstance(b, dict) and b.get("logicalType") == "decimal" for b in _branches(t))


def lint(index: ContractIndex) -> list[Violation]:
    return [v for name in sorted(index.raw) for v in _lint_one(index, name)]


def _lint_one(index: ContractIndex, name: str) -> Iterator[Violation]:
    schema = index.raw[name]
    rel = index.files[name].parent.relative_to(index.root).as_posix()
    if not schema.get("doc"):
        yield Violation(name, "/", "doc", "the type has no doc")
    expected_ns = NAMESPACE_BY_DIR.get(rel)
    if expected_ns and full_name(schema, None).rpartition(".")[0] != expected_ns:
        yield Violation(name, "/", "namespace", f"types in avro/{rel}/ live in namespace {expected_ns}")
    if schema["type"] == "enum" and schema.get("default") not in schema.get("symbols", []):
        yield Violation(name, "/", "enum-default", "enums need a default symbol so new symbols can be added")
    owned = rel in NAMESPACE_BY_DIR
    for f in schema.get("fields", []):
        where = f"/{f['name']}"
        if not f.get("doc"):
            yield Violation(name, where, "doc", "field has no doc")
        if owned and f.get("owner") not in OWNERS:
            yield Violation(name, where, "owner", f"field must declare owner, one of {sorted(OWNERS)}")
        if MONEY_WORDS.search(f["name"]) and _is_float(f["type"]):
            yield Violation(name, where, "float-money", "money must be decimal, never float/double")
        if MONEY_WORDS.search(f["name"]) and owned and not _is_decimal(f["type"]) and not _is_ref(f["type"]):
            yield Violation(name, where, "money-decimal", "money fields are bytes with logicalType decimal")
        branches = _branches(f["type"])
        if "null" in branches and "default" not in f:
            yield Violation(name, where, "optional-default", 'optional fields need "default": null')


def _is_ref(t: Any) -> bool:
    return any(isinstance(b, str) and "." in b for b in _branches(t))


def new_fields_without_default(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Fields present in ``new`` but not ``old`` that have no default (readers of old data fail)."""
    old_names = {f["name"] for f in old.get("fields", [])} | {
        a for f in old.get("fields", []) for a in f.get("aliases", [])
    }
    return [
        f["name"]
        for f in new.get("fields", [])
        if f["name"] not in old_names and not set(f.get("aliases", [])) & old_names and "default" not in f
    ]
