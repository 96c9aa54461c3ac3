"""How ``SchemaResolver`` classifies a registry that does not answer: transient, so it is retried."""

from __future__ import annotations

import asyncio

import httpx2
import pytest

from app.domain.errors import ReasonCode, SyncError
from app.serde.registry import SchemaResolver


class Unreachable:
    """A registry client whose every call fails below HTTP, the way ``exc`` says."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    async def get_schema(self, schema_id: int):
        raise self.exc

    async def lookup_schema(self, subject: str, schema):
        raise self.exc


OUTAGES = [
    httpx2.ConnectError("All connection attempts failed"),
    httpx2.ReadError(""),
    ConnectionResetError(104, "Connection reset by peer"),
    # anyio reading the peer address of a connection the registry reset as it was made
    AttributeError("'NoneType' object has no attribute 'getpeername'"),
]


@pytest.mark.parametrize("exc", OUTAGES, ids=lambda e: type(e).__name__)
def test_a_registry_that_does_not_answer_is_a_transient_registry_outage(exc: Exception) -> None:
    resolver = SchemaResolver(Unreachable(exc))
    for call in (lambda: resolver.writer(7), lambda: resolver.id_for("t-value", {"type": "string"})):
        with pytest.raises(SyncError) as raised:
            asyncio.run(call())
        assert raised.value.reason is ReasonCode.REGISTRY_UNAVAILABLE and raised.value.transient


def test_an_attribute_error_that_is_not_a_reset_connection_is_a_bug_not_an_outage() -> None:
    resolver = SchemaResolver(Unreachable(AttributeError("'Schema' object has no attribute 'schema_idd'")))
    for call in (lambda: resolver.writer(7), lambda: resolver.id_for("t-value", {"type": "string"})):
        with pytest.raises(AttributeError, match="schema_idd"):
            asyncio.run(call())
