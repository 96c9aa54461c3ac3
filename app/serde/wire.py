"""The Confluent wire format: magic byte 0, a 4-byte big-endian schema id, then the Avro body."""

from __future__ import annotations

import struct

from app.domain.errors import ReasonCode, SyncError

MAGIC = 0
_HEADER = struct.Struct(">bI")
HEADER_SIZE = _HEADER.size


def split(data: bytes | None) -> tuple[int, memoryview]:
    """Return ``(schema_id, avro_body)``; raise a reason-coded SyncError for anything else."""
    if data is None:
        raise SyncError(ReasonCode.NULL_VALUE, "value is null")
    if len(data) < HEADER_SIZE:
        raise SyncError(ReasonCode.TRUNCATED_FRAME, f"{len(data)} bytes, shorter than the 5-byte header")
    magic, schema_id = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise SyncError(ReasonCode.BAD_MAGIC_BYTE, f"magic byte {magic}, expected 0")
    return schema_id, memoryview(data)[HEADER_SIZE:]


def header(schema_id: int) -> bytes:
    return _HEADER.pack(MAGIC, schema_id)
