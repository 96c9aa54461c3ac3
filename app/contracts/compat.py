"""Offline compatibility of two Avro schemas, by the Apache ``avro`` package's resolution checker.

BACKWARD: the new schema reads data written with the old one. FORWARD: the old reads the new.
FULL: both. One gap in the Apache checker is closed here: it ignores logical types, but the Avro
spec says two ``decimal`` schemas match only if their scale and precision match (a reader with
another scale silently mis-scales every amount), so decimal parameters are compared too: the scale
must be equal; a reader's precision may be wider than the writer's (every value still fits).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from app.contracts import ContractIndex, full_name, named_types

Level = Literal["BACKWARD", "FORWARD", "FULL"]


@dataclass(frozen=True)
class Problem:
    direction: str  # "new reads old" or "old reads new"
    rule: str
    where: str
    detail: str

    def __str__(self) -> str:
        return f"{self.direction}: {self.rule} at {self.where}: {self.detail}"


def _directions(level: str) -> list[tuple[str, bool]]:
    base = level.removesuffix("_TRANSITIVE")
    if base == "NONE":
        return []
    return {
        "BACKWARD": [("new reads old", True)],
        "FORWARD": [("old reads new", False)],
        "FULL": [("new reads old", True), ("old reads new", False)],
    }[base]


def check(old: dict[str, Any], new: dict[str, Any], level: str) -> list[Problem]:
    """Every reason ``new`` is not ``level``-compatible with ``old`` (empty: compatible)."""
    old_s, new_s = avro.schema.parse(json.dumps(old)), avro.schema.parse(json.dumps(new))
    problems: list[Problem] = []
    for direction, new_is_reader in _directions(level):
        reader, writer = (new_s, old_s) if new_is_reader else (old_s, new_s)
        result = ReaderWriterCompatibilityChecker().get_compatibility(reader, writer)
        if result.compatibility is not SchemaCompatibilityType.compatible:
            reader_json = new if new_is_reader else old
            locations = sorted(loc for loc in result.locations if loc != "/") or ["/"]
            where = ", ".join(f"{loc} (field {_field_path(reader_json, loc)})" for loc in locations)
            rules = ", ".join(sorted(i.value for i in result.incompatibilities))
            detail = "; ".join(sorted(str(m) for m in result.messages))
            problems.append(Problem(direction, rules, where, detail))
            problems += _nested(reader_json, new if not new_is_reader else old, direction)
        r_json = new if new_is_reader else old
        w_json = old if new_is_reader else new
        problems += [Problem(direction, "decimal_mismatch", w, d) for w, d in _decimal_mismatches(r_json, w_json)]
    return problems


def _nested(reader: dict[str, Any], writer: dict[str, Any], direction: str) -> list[Problem]:
    """Problems inside records both schemas define: the Apache checker stops at a failing union
    branch ("reader union lacking writer type") without saying which field of the branch broke."""
    r_types, w_types = named_types(reader), named_types(writer)
    r_index, w_index = ContractIndex.of_types(r_types), ContractIndex.of_types(w_types)
    top = {full_name(reader, None), full_name(writer, None)}
    found: list[Problem] = []
    for name in sorted((r_types.keys() & w_types.keys()) - top):
        if r_types[name].get("type") != "record" or r_types[name] == w_types[name]:
            continue
        r_json, w_json = r_index.expanded(name), w_index.expanded(name)
        result = ReaderWriterCompatibilityChecker().get_compatibility(
            avro.schema.parse(json.dumps(r_json)), avro.schema.parse(json.dumps(w_json))
        )
        if result.compatibility is not SchemaCompatibilityType.compatible:
            locations = sorted(loc for loc in result.locations if loc != "/") or ["/"]
            where = ", ".join(f"{name}{loc} (field {_field_path(r_json, loc)})" for loc in locations)
            rules = ", ".join(sorted(i.value for i in result.incompatibilities))
            found.append(Problem(direction, rules, where, "; ".join(sorted(str(m) for m in result.messages))))
    return found


def _field_path(schema: Any, pointer: str) -> str:
    """The dotted field names along a JSON pointer into a schema (``/fields/2/type`` -> ``qty``)."""
    names: list[str] = []
    node = schema
    for part in [p for p in pointer.split("/") if p]:
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError, TypeError):
            break
        if isinstance(node, dict) and "name" in node and "type" in node and not isinstance(node.get("fields"), list):
            names.append(node["name"])
    return ".".join(names) or "(record)"


def _decimals(node: Any, path: str, out: dict[str, tuple[int, int]]) -> None:
    """Map field paths (``/Record.field``) to (precision, scale) of every decimal in a schema."""
    if isinstance(node, list):
        for branch in node:
            _decimals(branch, path, out)
    elif isinstance(node, dict):
        if node.get("logicalType") == "decimal":
            out[path] = (int(node.get("precision", 0)), int(node.get("scale", 0)))
        if node.get("type") in ("record", "error"):
            for f in node.get("fields", []):
                _decimals(f["type"], f"{path}/{f['name']}", out)
        for key in ("items", "values"):
            if key in node:
                _decimals(node[key], path, out)
        if isinstance(node.get("type"), (dict, list)):
            _decimals(node["type"], path, out)


def _decimal_mismatches(reader: dict[str, Any], writer: dict[str, Any]) -> list[tuple[str, str]]:
    r: dict[str, tuple[int, int]] = {}
    w: dict[str, tuple[int, int]] = {}
    _decimals(reader, "", r)
    _decimals(writer, "", w)
    return [
        (
            path,
            f"decimal(precision={w[path][0]}, scale={w[path][1]}) read as "
            f"decimal(precision={r[path][0]}, scale={r[path][1]})",
        )
        for path in sorted(r.keys() & w.keys())
        if r[path][1] != w[path][1] or r[path][0] < w[path][0]
    ]
