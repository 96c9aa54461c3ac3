"""Pydantic models built from the Avro contracts: one source of truth, so they cannot drift.

``model("io.crmerpsync.canonical.Opportunity")`` returns a frozen pydantic model whose fields,
types and defaults are read from the ``.avsc`` file: decimals carry the contract's precision and
scale, timestamps are aware datetimes, enums are ``StrEnum`` classes with the contract's symbols,
optional unions default to None. ``to_avro`` gives the dict fastavro writes (nested records carry
fastavro's ``"-type"`` key so a union's branch is explicit).
"""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from app.contracts import ContractIndex, default_index, full_name

_PRIMITIVE: dict[str, Any] = {
    "null": type(None),
    "boolean": bool,
    "int": int,
    "long": int,
    "float": float,
    "double": float,
    "bytes": bytes,
    "string": str,
}


class ContractModel(BaseModel):
    """Base of every generated model; ``__avro_name__`` is the contract's full name."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)
    __avro_name__: str = ""

    @model_validator(mode="before")
    @classmethod
    def _union_branch(cls, data: Any) -> Any:
        """A ``"-type"`` key (fastavro's union notation) picks the branch: other records refuse it."""
        if isinstance(data, dict) and "-type" in data:
            if data["-type"] != cls.__avro_name__:
                raise ValueError(f"not a {cls.__avro_name__}")
            data = {k: v for k, v in data.items() if k != "-type"}
        return data

    def to_avro(self) -> dict[str, Any]:
        return {name: _to_avro(getattr(self, name)) for name in type(self).model_fields}


def _to_avro(value: Any) -> Any:
    if isinstance(value, ContractModel):  # "-type" names the branch when the record sits in a union
        return {"-type": value.__avro_name__, **value.to_avro()}
    if isinstance(value, list):
        return [_to_avro(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_avro(v) for k, v in value.items()}
    if isinstance(value, enum.Enum):
        return value.value
    return value


class _Builder:
    def __init__(self, index: ContractIndex) -> None:
        self.index = index
        self.named: dict[str, Any] = {}

    def type_of(self, t: Any, ns: str | None) -> Any:
        if isinstance(t, list):
            branches = [self.type_of(b, ns) for b in t]
            return branches[0] if len(branches) == 1 else Union[tuple(branches)]  # noqa: UP007
        if isinstance(t, str):
            if t in _PRIMITIVE:
                return _PRIMITIVE[t]
            ref = t if "." in t else f"{ns}.{t}" if ns else t
            if ref not in self.named:
                self.build(ref)
            return self.named[ref]
        logical = t.get("logicalType")
        base = t["type"]
        if logical == "decimal" and base == "bytes":
            return Annotated[Decimal, Field(max_digits=int(t["precision"]), decimal_places=int(t.get("scale", 0)))]
        if logical in ("timestamp-millis", "timestamp-micros") and base == "long":
            return dt.datetime
        if logical == "date" and base == "int":
            return dt.date
        if base == "array":
            return list[self.type_of(t["items"], ns)]
        if base == "map":
            return dict[str, self.type_of(t["values"], ns)]
        if base in ("record", "enum", "fixed", "error"):
            name = full_name(t, ns)
            if name not in self.named:
                self._define(t, name)
            return self.named[name]
        return self.type_of(base, ns)

    def build(self, name: str) -> Any:
        if name not in self.named:
            self._define(self.index.raw[name], name)
        return self.named[name]

    def _define(self, schema: dict[str, Any], name: str) -> None:
        short = name.rpartition(".")[2]
        if schema["type"] == "enum":
            self.named[name] = enum.StrEnum(short, {s: s for s in schema["symbols"]})
            return
        if schema["type"] == "fixed":
            self.named[name] = bytes
            return
        ns = name.rpartition(".")[0] or None
        fields: dict[str, Any] = {}
        for f in schema["fields"]:
            py = self.type_of(f["type"], ns)
            if "default" in f:
                fields[f["name"]] = (py, Field(default=_default(py, f["default"]), description=f.get("doc")))
            else:
                fields[f["name"]] = (py, Field(description=f.get("doc")))
        model = create_model(short, __base__=ContractModel, __doc__=schema.get("doc"), **fields)
        model.__avro_name__ = name
        self.named[name] = model


def _default(py: Any, value: Any) -> Any:
    """The contract's default as a Python value (pydantic copies mutable defaults per instance)."""
    if isinstance(py, type) and issubclass(py, enum.Enum) and value is not None:
        return py(value)
    return value


@lru_cache(maxsize=1)
def _builder() -> _Builder:
    return _Builder(default_index())


def model(name: str) -> type[ContractModel]:
    """The pydantic model of contract ``name`` (records only)."""
    built = _builder().build(name)
    if not (isinstance(built, type) and issubclass(built, ContractModel)):
        raise TypeError(f"{name} is not a record")
    return built


def enum_of(name: str) -> type[enum.StrEnum]:
    return _builder().build(name)
