"""Avro bodies in the Confluent wire format, decoded against a reader contract and encoded with a known id."""

from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO
from typing import Any

import fastavro
from fastavro.schema import to_parsing_canonical_form

from app.domain.errors import ReasonCode, SyncError
from app.serde import wire
from app.serde.registry import SchemaResolver, parse


@dataclass(frozen=True, slots=True)
class Decoded:
    schema_id: int
    value: Any
    schema: dict[str, Any]  # what ``value`` was read as: the reader contract, or else the writer schema


def _without_decimal_types(node: Any) -> Any:
    """A schema with every ``decimal`` logical type removed: such values decode as their raw bytes."""
    if isinstance(node, list):
        return [_without_decimal_types(n) for n in node]
    if isinstance(node, dict):
        return {
            k: _without_decimal_types(v)
            for k, v in node.items()
            if not k.startswith("__fastavro") and k != "__named_schemas" and not (k == "logicalType" and v == "decimal")
        }
    return node


class AvroDecoder:
    """Decodes wire-format bytes with the writer schema (by id), projected onto the reader contract.

    Projection is skipped when writer and reader are the same schema: it doubles decode time.
    ``raw_decimals`` (for input from outside, the CDC topics): decimal values decode as their bytes,
    and the column reader converts them after checking their length. Converting the bytes of a
    decimal to a number costs time quadratic in their length, and fastavro would do it for any length
    while decoding: a 1 MB amount held the event loop for ~100 s.
    """

    def __init__(
        self, resolver: SchemaResolver, reader: dict[str, Any] | None = None, raw_decimals: bool = False
    ) -> None:
        if raw_decimals and reader is not None:
            raise ValueError("raw_decimals decodes by the writer schema alone: no reader contract")
        self._resolver = resolver
        self._reader = parse(reader) if reader is not None else None
        self._reader_form = to_parsing_canonical_form(self._reader) if self._reader is not None else None
        self._projection: dict[int, dict[str, Any] | None] = {}
        self._raw_decimals = raw_decimals
        self._decode_as: dict[int, dict[str, Any]] = {}

    def _decoding_schema(self, schema_id: int, writer: dict[str, Any]) -> dict[str, Any]:
        if not self._raw_decimals:
            return writer
        found = self._decode_as.get(schema_id)
        if found is None:
            found = self._decode_as[schema_id] = parse(_without_decimal_types(writer))
        return found

    async def decode(self, data: bytes | None) -> Decoded:
        schema_id, body = wire.split(data)
        writer = self._resolver.cached(schema_id) or await self._resolver.writer(schema_id)
        if schema_id not in self._projection:
            same = self._reader is None or to_parsing_canonical_form(writer) == self._reader_form
            self._projection[schema_id] = None if same else self._reader
        try:
            value = fastavro.schemaless_reader(
                BytesIO(body),
                self._decoding_schema(schema_id, writer),
                self._projection[schema_id],
                return_record_name=True,
                return_record_name_override=True,
            )
        except fastavro.read.SchemaResolutionError as exc:
            raise SyncError(ReasonCode.SCHEMA_MISMATCH, f"schema id {schema_id}: {exc}") from exc
        except Exception as exc:  # fastavro raises EOFError, ValueError, UnicodeDecodeError, IndexError…
            raise SyncError(ReasonCode.AVRO_DECODE_ERROR, f"schema id {schema_id}: {exc!r}") from exc
        return Decoded(schema_id, value, self._projection[schema_id] or writer)


class AvroEncoder:
    """Encodes records with one registered writer schema (id resolved before the first message)."""

    def __init__(self, schema_id: int, schema: dict[str, Any]) -> None:
        self.schema_id = schema_id
        self._schema = parse(schema)
        self._header = wire.header(schema_id)

    def encode(self, record: Any) -> bytes:
        buf = BytesIO()
        buf.write(self._header)
        fastavro.schemaless_writer(buf, self._schema, record)
        return buf.getvalue()
