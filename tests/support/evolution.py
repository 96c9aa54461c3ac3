"""Schema evolution cases shared by the offline-checker and live-registry tests."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

BASE: dict[str, Any] = {
    "type": "record",
    "name": "Deal",
    "namespace": "io.crmerpsync.test",
    "doc": "evolution fixture",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 2}},
        {"name": "qty", "type": "int"},
        {"name": "stage", "type": {"type": "enum", "name": "Stage", "symbols": ["OPEN", "WON"]}},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "legacy", "type": "string", "default": ""},
    ],
}


def _field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in schema["fields"] if f["name"] == name)


def evolve(change: Callable[[dict[str, Any]], None], base: dict[str, Any] = BASE) -> dict[str, Any]:
    new = copy.deepcopy(base)
    change(new)
    return new


@dataclass(frozen=True)
class Case:
    name: str
    old: dict[str, Any]
    new: dict[str, Any]
    backward: bool  # the new schema reads data written with the old one
    forward: bool  # the old schema reads data written with the new one
    field: str  # the field a rejection must name


def _with_enum_default(s: dict[str, Any]) -> None:
    _field(s, "stage")["type"]["default"] = "OPEN"


BASE_ENUM_DEFAULT = evolve(_with_enum_default)

CASES = [
    Case(
        "add optional field",
        BASE,
        evolve(lambda s: s["fields"].append({"name": "region", "type": ["null", "string"], "default": None})),
        True,
        True,
        "region",
    ),
    Case(
        "add field without default",
        BASE,
        evolve(lambda s: s["fields"].append({"name": "region", "type": "string"})),
        False,
        True,
        "region",
    ),
    Case(
        "remove field with default",
        BASE,
        evolve(lambda s: s["fields"].remove(_field(s, "legacy"))),
        True,
        True,
        "legacy",
    ),
    Case(
        "remove field without default", BASE, evolve(lambda s: s["fields"].remove(_field(s, "qty"))), True, False, "qty"
    ),
    Case(
        "rename with alias",
        BASE,
        evolve(lambda s: _field(s, "qty").update(name="quantity", aliases=["qty"])),
        True,
        False,
        "qty",
    ),
    Case(
        "rename without alias",
        BASE,
        evolve(lambda s: _field(s, "qty").update(name="quantity")),
        False,
        False,
        "quantity",
    ),
    Case("widen int to long", BASE, evolve(lambda s: _field(s, "qty").update(type="long")), True, False, "qty"),
    Case(
        "enum symbol added, enum has default",
        BASE_ENUM_DEFAULT,
        evolve(lambda s: _field(s, "stage")["type"]["symbols"].append("LOST"), BASE_ENUM_DEFAULT),
        True,
        True,
        "stage",
    ),
    Case(
        "enum symbol added, no enum default",
        BASE,
        evolve(lambda s: _field(s, "stage")["type"]["symbols"].append("LOST")),
        True,
        False,
        "stage",
    ),
    Case(
        "decimal scale change",
        BASE,
        evolve(lambda s: _field(s, "amount")["type"].update(scale=4)),
        False,
        False,
        "amount",
    ),
]
