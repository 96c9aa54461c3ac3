"""Salesforce Change Data Capture events → the ``RowChange``s the Debezium path produces.

A Salesforce change event (``<Object>ChangeEvent``, avro/salesforce/) has a ``ChangeEventHeader``
and the object's fields by API name. It differs from a Debezium envelope in ways a naive reader gets
wrong, each handled here:

- an ``UPDATE`` carries only what changed: a field that is null and not in ``nulledFields`` was not
  sent, so it is reported *unavailable* (the deal keeps its previous value), as Debezium's TOAST
  placeholder is; a field in ``nulledFields`` becomes null. There is no before image;
- one event can stand for the same change on several records (``recordIds``): each record becomes
  its own change;
- the order is the commit time, then the transaction's ``commitNumber``, then the change's
  ``sequenceNumber`` in it (``Position``); a redelivered event has the same position, so the deal
  sees a duplicate;
- ``nulledFields``/``changedFields`` are field names, or (as the Pub/Sub API sends them) bitmaps over
  the writer schema's field positions, decoded here;
- compound fields (``BillingAddress``) are records; their parts are read as columns named
  ``BillingAddress.Street`` and so on;
- a gap event (``GAP_*``) names records whose change was not delivered, an overflow
  (``GAP_OVERFLOW``) an entity of which an unknown number of records changed: both are a ``Gap``
  (the caller asks for a resync and holds the affected deals);
- ``changeOrigin`` names the API client that made the change: the integration's own client's changes
  are flagged ``by_integration`` (no commands come of them, as for Debezium's integration user).

Every event is read by its writer schema: the table's mapping (app/mappings/salesforce/<table>.toml,
chosen by the header's ``entityName``) is compiled against the flattened fields of that schema once
per schema id.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from app.cdc.columns import WriterColumn, writer_column
from app.cdc.envelope import named_records
from app.cdc.mapping import UNAVAILABLE, RowReader, TableMapping
from app.domain.changes import Op, Position, RowChange
from app.domain.errors import ReasonCode, SyncError

MAPPINGS_DIR = Path(__file__).resolve().parent.parent / "mappings" / "salesforce"
HEADER = "ChangeEventHeader"
ID_COLUMN = "Id"  # the record id is the header's, read by the mappings as this column
HEADER_NEEDS = ("entityName", "recordIds", "changeType", "transactionKey", "sequenceNumber", "commitTimestamp",
                "commitNumber")  # fmt: skip
FULL = frozenset({"CREATE", "UNDELETE", "DELETE"})  # events that carry (or end) the whole record
CHANGES = {"CREATE": Op.UPSERT, "UPDATE": Op.UPSERT, "UNDELETE": Op.UPSERT, "DELETE": Op.DELETE}
GAPS = frozenset({"GAP_CREATE", "GAP_UPDATE", "GAP_DELETE", "GAP_UNDELETE", "GAP_OVERFLOW"})


@dataclass(frozen=True, slots=True)
class Gap:
    """Changes Salesforce could not send: the records (none, for an overflow: the whole entity)
    whose current state must be fetched again before the service decides on them."""

    table: str
    entity: str
    record_ids: tuple[str, ...]
    change_type: str
    position: Position
    transaction_key: str

    @property
    def overflow(self) -> bool:
        return self.change_type == "GAP_OVERFLOW"

    @property
    def resync_id(self) -> str:
        """The resync request's id: one per gap event, the same on a redelivery."""
        return f"resync:{self.entity}:{self.transaction_key}:{self.position.seq}"


@dataclass(frozen=True, slots=True)
class _Schema:
    """A writer schema compiled for one mapping: its flattened columns' reader and field positions."""

    reader: RowReader
    compound: frozenset[str]  # top-level fields that are records
    positions: tuple[str, ...]  # top-level field names by position (for bitmaps)
    nested: dict[int, tuple[str, ...]]  # a compound field's position → its parts by position


def flatten_columns(schema: dict[str, Any]) -> tuple[dict[str, WriterColumn], frozenset[str]]:
    """The event's fields as columns (a compound field's parts as ``Field.Part``), without the header."""
    found: dict[str, dict[str, Any]] = {}
    named_records(schema, found)
    columns: dict[str, WriterColumn] = {}
    compound: set[str] = set()
    for f in schema["fields"]:
        if f["name"] == HEADER:
            continue
        record = _record_of(f["type"], found)
        if record is None:
            columns[f["name"]] = writer_column(f["name"], f["type"])
            continue
        compound.add(f["name"])
        for part in record["fields"]:
            name = f"{f['name']}.{part['name']}"
            columns[name] = writer_column(name, part["type"])
    columns[ID_COLUMN] = WriterColumn(ID_COLUMN, "string", None, None, False)
    return columns, frozenset(compound)


def header_fields(schema: dict[str, Any]) -> set[str]:
    """The field names of a change event schema's ``ChangeEventHeader``."""
    found: dict[str, dict[str, Any]] = {}
    named_records(schema, found)
    for f in schema.get("fields", []):
        if f["name"] == HEADER:
            record = _record_of(f["type"], found)
            return {h["name"] for h in record["fields"]} if record else set()
    return set()


def _record_of(avro_type: Any, found: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    for branch in avro_type if isinstance(avro_type, list) else [avro_type]:
        if isinstance(branch, dict) and branch.get("type") == "record":
            return branch
        if isinstance(branch, str) and branch in found:
            return found[branch]
    return None


def field_names(entries: list[str], positions: tuple[str, ...], nested: dict[int, tuple[str, ...]]) -> set[str]:
    """``nulledFields``/``changedFields`` as field names: names pass through; a Pub/Sub bitmap
    (``0x…``: bit i set = the schema's i-th field; ``<i>-0x…``: parts of the compound i-th field)
    is decoded against the writer schema."""
    out: set[str] = set()
    for entry in entries:
        head, sep, bits = entry.partition("-0x")
        if sep and head.isdigit():
            parent = int(head)
            parts = nested.get(parent, ())
            out |= {f"{positions[parent]}.{parts[i]}" for i in _bits(bits) if i < len(parts)}
        elif entry.startswith("0x"):
            out |= {positions[i] for i in _bits(entry[2:]) if i < len(positions)}
        else:
            out.add(entry)
    return out


def _bits(hex_digits: str) -> list[int]:
    value = int(hex_digits, 16)
    return [i for i in range(value.bit_length()) if value >> i & 1]


@cache
def mappings(directory: Path = MAPPINGS_DIR) -> dict[str, TableMapping]:
    """Every Salesforce mapping, by the entity (object API name) it reads."""
    found = {}
    for path in sorted(directory.glob("*.toml")):
        mapping = TableMapping(tomllib.loads(path.read_text()))
        if not mapping.entity:
            raise SyncError(ReasonCode.MAPPING_ERROR, f"{path}: a Salesforce mapping names its entity")
        found[mapping.entity] = mapping
    return found


class SalesforceNormaliser:
    """Decoded Salesforce change events → row changes or a gap, each writer schema compiled once."""

    def __init__(self, integration_client: str | None, directory: Path = MAPPINGS_DIR) -> None:
        self._mappings = mappings(directory)
        self._client = f"client={integration_client}" if integration_client else None
        self._schemas: dict[tuple[str, int], _Schema] = {}

    def _compiled(self, mapping: TableMapping, schema_id: int, schema: dict[str, Any]) -> _Schema:
        key = (mapping.table, schema_id)
        if key not in self._schemas:
            columns, compound = flatten_columns(schema)
            found: dict[str, dict[str, Any]] = {}
            named_records(schema, found)
            positions = tuple(f["name"] for f in schema["fields"])
            nested = {
                i: tuple(p["name"] for p in record["fields"])
                for i, f in enumerate(schema["fields"])
                if (record := _record_of(f["type"], found)) is not None and f["name"] != HEADER
            }
            self._schemas[key] = _Schema(mapping.reader(columns), compound, positions, nested)
        return self._schemas[key]

    def __call__(self, value: dict[str, Any], schema_id: int, schema: dict[str, Any]) -> list[RowChange] | Gap:
        header = value.get(HEADER)
        if not isinstance(header, dict):
            raise SyncError(ReasonCode.NOT_A_CDC_EVENT, "not a Salesforce change event: no ChangeEventHeader")
        entity = str(header.get("entityName"))
        mapping = self._mappings.get(entity)
        if mapping is None:
            raise SyncError(ReasonCode.MAPPING_ERROR, f"no Salesforce mapping for entity {entity!r}")
        kind = str(header.get("changeType"))
        position = Position(None, int(header["commitTimestamp"]), int(header["commitNumber"]),
                            int(header["sequenceNumber"]))  # fmt: skip
        ids = tuple(str(i) for i in header.get("recordIds") or ())
        if kind in GAPS:
            return Gap(mapping.table, entity, ids, kind, position, str(header.get("transactionKey")))
        op = CHANGES.get(kind)
        if op is None:
            raise SyncError(ReasonCode.NOT_A_CDC_EVENT, f"{entity}: unknown changeType {kind!r}")
        if not ids:
            raise SyncError(ReasonCode.MAPPING_ERROR, f"{entity} {kind}: no recordIds")
        by_integration = self._client is not None and self._client in str(header.get("changeOrigin") or "")
        if op is Op.DELETE:
            return [
                RowChange(mapping.table, op, i, {}, frozenset(), position, False, True, by_integration) for i in ids
            ]
        compiled = self._compiled(mapping, schema_id, schema)
        row = self._row(value, compiled)
        if kind == "UPDATE":
            nulled = field_names(list(header.get("nulledFields") or ()), compiled.positions, compiled.nested)
            row = {c: (UNAVAILABLE if v is None and not _nulled(c, nulled) else v) for c, v in row.items()}
        changes = []
        for record_id in ids:
            mapped = compiled.reader.apply({**row, ID_COLUMN: record_id})
            full = kind in FULL
            changes.append(
                RowChange(
                    mapping.table,
                    op,
                    mapped.row_id,
                    mapped.fields,
                    mapped.unavailable,
                    position,
                    False,
                    full,
                    by_integration,
                )
            )
        return changes

    @staticmethod
    def _row(value: dict[str, Any], compiled: _Schema) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for name, v in value.items():
            if name == HEADER:
                continue
            if name in compiled.compound:
                parts = v or {}
                for part in compiled.nested.get(compiled.positions.index(name), ()):
                    row[f"{name}.{part}"] = parts.get(part)
            else:
                row[name] = v
        return row


def _nulled(column: str, nulled: set[str]) -> bool:
    """A column set to null: named itself, or (a compound's part) its compound field is."""
    return column in nulled or column.partition(".")[0] in nulled
