"""The Confluent wire format: every malformed frame gets its own reason code."""

from __future__ import annotations

import pytest

from app.domain.errors import ReasonCode, SyncError
from app.serde import wire


def test_split_returns_schema_id_and_body():
    schema_id, body = wire.split(wire.header(70000) + b"body")
    assert schema_id == 70000 and bytes(body) == b"body"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (None, ReasonCode.NULL_VALUE),
        (b"", ReasonCode.TRUNCATED_FRAME),
        (b"\x00\x00\x01", ReasonCode.TRUNCATED_FRAME),
        (b"\x01\x00\x00\x00\x01body", ReasonCode.BAD_MAGIC_BYTE),
    ],
)
def test_malformed_frames_are_reason_coded(data, reason):
    with pytest.raises(SyncError) as err:
        wire.split(data)
    assert err.value.reason == reason and not err.value.transient
