"""The Avro contracts in ``avro/``: indexed by full name, with cross-file references inlined.

Each ``.avsc`` holds one named type; other files refer to it by full name. ``expanded`` returns a
self-contained schema (a type is defined at its first use and referenced by full name after), which
is what gets registered and parsed — the registry never needs schema references.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from app.domain.errors import ServiceError
from app.settings import REPO_ROOT

AVRO_DIR = REPO_ROOT / "avro"
PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED = frozenset({"record", "error", "enum", "fixed"})


class ContractError(ServiceError):
    """A contract file is missing, malformed or refers to an unknown type."""


def full_name(schema: dict[str, Any], enclosing_ns: str | None) -> str:
    name = schema["name"]
    if "." in name:
        return name
    ns = schema.get("namespace", enclosing_ns)
    return f"{ns}.{name}" if ns else name


def _resolve(name: str, ns: str | None) -> str:
    return name if "." in name or not ns else f"{ns}.{name}"


class ContractIndex:
    """Every named type under a folder of ``.avsc`` files, by full name."""

    def __init__(self, root: Path = AVRO_DIR) -> None:
        self.root = root
        self.files: dict[str, Path] = {}
        self.raw: dict[str, dict[str, Any]] = {}
        for path in sorted(root.rglob("*.avsc")):
            try:
                schema = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                raise ContractError(f"{path}: not JSON: {exc}") from exc
            if not isinstance(schema, dict) or schema.get("type") not in NAMED:
                raise ContractError(f"{path}: must hold one named record, enum or fixed")
            name = full_name(schema, None)
            if name in self.files:
                raise ContractError(f"{name} is defined twice: {self.files[name]} and {path}")
            self.files[name] = path
            self.raw[name] = schema

    @classmethod
    def of_types(cls, types: dict[str, dict[str, Any]]) -> ContractIndex:
        """An index over named types held in memory (e.g. the types nested in one expanded schema)."""
        index = cls.__new__(cls)
        index.root, index.files, index.raw = Path("."), {}, dict(types)
        return index

    def expanded(self, name: str) -> dict[str, Any]:
        """The schema ``name`` with every referenced named type inlined once."""
        if name not in self.raw:
            raise ContractError(f"no contract named {name} under {self.root}")
        return self._expand(self.raw[name], None, set())

    def expand_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        """A schema from elsewhere (an old version, a file to check) with references resolved here."""
        return self._expand(schema, None, set())

    def _expand(self, node: Any, ns: str | None, defined: set[str]) -> Any:
        if isinstance(node, str):
            if node in PRIMITIVES:
                return node
            ref = _resolve(node, ns)
            if ref in defined:
                return ref
            if ref not in self.raw:
                raise ContractError(f"unknown type {node!r} (looked for {ref})")
            return self._expand(self.raw[ref], None, defined)
        if isinstance(node, list):
            return [self._expand(branch, ns, defined) for branch in node]
        kind = node.get("type")
        if kind in NAMED:
            name = full_name(node, ns)
            defined.add(name)
            inner_ns = name.rpartition(".")[0] or None
            out = dict(node)
            if kind in ("record", "error"):
                out["fields"] = [{**f, "type": self._expand(f["type"], inner_ns, defined)} for f in node["fields"]]
            return out
        if kind == "array":
            return {**node, "items": self._expand(node["items"], ns, defined)}
        if kind == "map":
            return {**node, "values": self._expand(node["values"], ns, defined)}
        if isinstance(kind, (dict, list)) or (isinstance(kind, str) and kind not in PRIMITIVES):
            return self._expand(kind, ns, defined)
        return node


def named_types(node: Any, ns: str | None = None, out: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Every named type defined inside a schema, by full name."""
    out = {} if out is None else out
    if isinstance(node, list):
        for branch in node:
            named_types(branch, ns, out)
    elif isinstance(node, dict):
        if node.get("type") in NAMED:
            name = full_name(node, ns)
            out[name] = node
            ns = name.rpartition(".")[0] or None
            for f in node.get("fields", []):
                named_types(f["type"], ns, out)
        for key in ("items", "values", "type"):
            if isinstance(node.get(key), (dict, list)):
                named_types(node[key], ns, out)
    return out


@lru_cache(maxsize=1)
def default_index() -> ContractIndex:
    return ContractIndex()


def owners(name: str, index: ContractIndex | None = None) -> dict[str, str]:
    """Field name -> owner (``CRM``, ``ERP``, ``SERVICE``) of the fields of record contract ``name``:
    the ownership the service enforces at run time (app/domain/ownership.py) is read from here."""
    schema = (index or default_index()).expanded(name)
    return {f["name"]: f["owner"] for f in schema["fields"] if "owner" in f}


def account_owners(index: ContractIndex | None = None) -> tuple[frozenset[str], frozenset[str]]:
    """(ERP-owned, CRM-owned) account fields: the canonical Account's, and the ERP fields the
    service writes back onto an account (CrmAccountUpdateCommand)."""
    account = owners("io.crmerpsync.canonical.Account", index)
    write_back = owners("io.crmerpsync.sync.CrmAccountUpdateCommand", index)
    erp = {f for f, o in (account | write_back).items() if o == "ERP"}
    crm = {f for f, o in account.items() if o == "CRM"}
    return frozenset(erp), frozenset(crm)


def opportunity_erp_owned(index: ContractIndex | None = None) -> frozenset[str]:
    """The ERP-owned fields the service writes onto a CRM opportunity (CrmUpdateCommand)."""
    return frozenset(f for f, o in owners("io.crmerpsync.sync.CrmUpdateCommand", index).items() if o == "ERP")
