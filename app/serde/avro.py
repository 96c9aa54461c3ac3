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


class AvroDecoder:
    """Decodes wire-format bytes with the writer schema (by id), projected onto the reader contract.

    Projection is skipped when writer and reader are the same schema: it doubles decode time.
    """

    def __init__(self, resolver: SchemaResolver, reader: dict[str, Any] | None = None) -> None:
        self._resolver = resolver
        self._reader = parse(reader) if reader is not None else None
        self._reader_form = to_parsing_canonical_form(self._reader) if self._reader is not None else None
        self._projection: dict[int, dict[str, Any] | None] = {}

    async def decode(self, data: bytes | None) -> Decoded:
        schema_id, body = wire.split(data)
        writer = self._resolver.cached(schema_id) or await self._resolver.writer(schema_id)
        if schema_id not in self._projection:
            same = self._reader is None or to_parsing_canonical_form(writer) == self._reader_form
            self._projection[schema_id] = None if same else self._reader
        try:
            value = fastavro.schemaless_reader(
                BytesIO(body),
                writer,
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
