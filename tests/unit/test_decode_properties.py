"""Property: whatever bytes arrive on a CRM topic, decoding them either works or fails with a reason code.

The decoder path of the CRM ingest (``wire.split`` → ``AvroDecoder`` with the real ``SchemaResolver``
over an in-memory registry → ``normalise``) is fed random bytes, frames with known and unknown schema
ids, and real envelopes truncated or with bytes flipped. The only exception it may raise is a
``SyncError`` (which the agent's guard turns into a quarantine with that reason): anything else
would be quarantined as ``UNEXPECTED_ERROR``, without a useful reason.
"""

from __future__ import annotations

import asyncio
import io
import json
from decimal import Decimal

import fastavro
from confluent_kafka.schema_registry.error import SchemaRegistryError
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from app.cdc.envelope import key_id, normalise
from app.contracts import default_index
from app.domain.changes import RowChange
from app.domain.errors import ReasonCode, SyncError
from app.serde import wire
from app.serde.avro import AvroDecoder, Decoded
from app.serde.registry import SchemaResolver
from app.sim import debezium as dbz

CONTRACTS = {
    1: "crm.public.opportunity.Envelope",
    2: "crm.public.opportunity.Key",
    3: "crm.public.opportunity_line_item.Envelope",
    4: "crm.public.opportunity.Unwrapped",
    5: "crm.public.account.Envelope",
}
TABLE_OF = {1: "opportunity", 2: "opportunity", 3: "opportunity_line_item", 4: "opportunity", 5: "account"}
SCHEMAS = {sid: default_index().expanded(name) for sid, name in CONTRACTS.items()}
PARSED = {sid: fastavro.parse_schema(schema) for sid, schema in SCHEMAS.items()}


class _Schema:
    def __init__(self, schema_str: str) -> None:
        self.schema_str = schema_str


class InMemoryRegistry:
    """What ``SchemaResolver`` needs of ``AsyncSchemaRegistryClient``: a 404 for an unknown id."""

    async def get_schema(self, schema_id: int) -> _Schema:
        if schema_id not in SCHEMAS:
            raise SchemaRegistryError(404, 40403, f"Schema {schema_id} not found")
        return _Schema(json.dumps(SCHEMAS[schema_id]))


def _encode(schema_id: int, value) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, PARSED[schema_id], value)
    return wire.header(schema_id) + buf.getvalue()


def _samples() -> list[bytes]:
    lsn = dbz.Lsn()
    opp = dbz.opportunity_row("006-1", "001-1", "Closed Won", Decimal("250.00"), name="ACME")
    line = dbz.line_row("00k-1", "006-1", "01t-1", 2, Decimal("125.00"))
    acc = dbz.account_row("001-1", "ACME GmbH", erp_customer_number="C-1")
    return [
        _encode(1, dbz.create("opportunity", opp, lsn)),
        _encode(1, dbz.update("opportunity", opp, {**opp, "stage_name": "Negotiation"}, lsn)),
        _encode(1, dbz.delete("opportunity", opp, lsn)),
        _encode(1, dbz.truncate("opportunity", lsn)),
        _encode(2, dbz.key("006-1")),
        _encode(3, dbz.create("opportunity_line_item", line, lsn)),
        _encode(4, dbz.unwrapped("opportunity", opp, "u", lsn.next(), lsn.ts_ms)),
        _encode(5, dbz.create("account", acc, lsn)),
    ]


SAMPLES = _samples()


@st.composite
def damaged(draw) -> bytes:
    """A real message, truncated, with bytes overwritten, or with a different schema id in front."""
    data = bytearray(draw(st.sampled_from(SAMPLES)))
    how = draw(st.sampled_from(["truncate", "flip", "reframe", "append"]))
    if how == "truncate":
        return bytes(data[: draw(st.integers(0, len(data) - 1))])
    if how == "flip":
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(wire.HEADER_SIZE, len(data) - 1))
            data[i] = draw(st.integers(0, 255))
        return bytes(data)
    if how == "reframe":
        return wire.header(draw(st.sampled_from([*SCHEMAS, 0, 6, 2**31, 2**32 - 1]))) + bytes(data[5:])
    return bytes(data) + draw(st.binary(min_size=1, max_size=20))


frames = st.one_of(
    st.none(),
    st.binary(max_size=64),
    st.builds(lambda sid, body: wire.header(sid) + body, st.sampled_from([*SCHEMAS, 7, 999]), st.binary(max_size=96)),
    st.builds(lambda magic, rest: bytes([magic]) + rest, st.integers(1, 255), st.binary(min_size=4, max_size=40)),
    damaged(),
)


def _decode(decoder: AvroDecoder, data: bytes | None) -> Decoded:
    return asyncio.run(decoder.decode(data))


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=frames, with_reader=st.booleans())
def test_any_bytes_decode_and_normalise_or_fail_with_a_reason_code(data, with_reader):
    resolver = SchemaResolver(InMemoryRegistry())
    reader = SCHEMAS[1] if with_reader else None  # the projection onto a reader contract, too
    decoder = AvroDecoder(resolver, reader)
    try:
        decoded = _decode(decoder, data)
        schema_id = decoded.schema_id
        if isinstance(decoded.value, dict) and CONTRACTS.get(schema_id, "").endswith(".Key"):
            key_id(decoded.value)
            return
        change = normalise(TABLE_OF.get(schema_id, "opportunity"), decoded.value, "006-1", decoded.schema)
        assert change is None or isinstance(change, RowChange)
        event("decoded and normalised")
    except SyncError as exc:
        event(f"rejected: {exc.reason}")
        assert exc.reason in ReasonCode.__members__.values()
        assert not exc.transient  # nothing here is an outage: a retry would fail the same way


def test_the_samples_themselves_decode():
    decoder = AvroDecoder(SchemaResolver(InMemoryRegistry()))
    for data in SAMPLES:
        assert _decode(decoder, data).schema_id in SCHEMAS


def test_an_unknown_schema_id_is_reason_coded_not_transient():
    decoder = AvroDecoder(SchemaResolver(InMemoryRegistry()))
    try:
        _decode(decoder, wire.header(4242) + b"\x02")
    except SyncError as exc:
        assert exc.reason is ReasonCode.UNKNOWN_SCHEMA_ID and not exc.transient
    else:
        raise AssertionError("decoded a frame with an unknown schema id")
