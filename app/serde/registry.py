"""Schema-registry lookups, asynchronous and cached: one network call per schema id per process.

Codecs never touch the network (Faust would swallow the error and skip the message); agents
await ``writer()`` before decoding, which is a dict hit after the first message of a schema.
"""

from __future__ import annotations

import json
from typing import Any

import fastavro
import httpx
import httpx2  # confluent-kafka's registry client raises this fork's errors
from confluent_kafka.schema_registry import AsyncSchemaRegistryClient, Schema
from confluent_kafka.schema_registry.error import SchemaRegistryError

from app.domain.errors import ReasonCode, SyncError, TransientError
from app.observe import metrics


def parse(schema: dict[str, Any] | str) -> dict[str, Any]:
    return fastavro.parse_schema(json.loads(schema) if isinstance(schema, str) else schema)


# the registry did not answer: a transport error of either httpx the clients use, or the socket itself
# (AttributeError only as _unreachable tells it apart)
NETWORK_ERRORS = (httpx.HTTPError, httpx2.HTTPError, OSError, AttributeError)


def _unreachable(exc: Exception, what: str) -> TransientError:
    """A registry outage as a transient error. When the registry resets a connection just as it is
    made, anyio (under httpx2) reads the peer address of a socket already gone and raises
    "'NoneType' object has no attribute 'getpeername'" (seen with the registry behind a proxy that
    was switched off); any other AttributeError is a bug, not an outage, and is raised as it is."""
    if isinstance(exc, AttributeError) and "getpeername" not in str(exc):
        raise exc
    return TransientError(ReasonCode.REGISTRY_UNAVAILABLE, f"{what}: {exc!r}")


_writer_hit, _writer_miss, _writer_error, _id_miss, _id_error = (
    metrics.registry_lookups.labels(kind=kind, result=result)
    for kind, result in (("writer", "hit"), ("writer", "miss"), ("writer", "error"), ("id", "miss"), ("id", "error"))
)


class SchemaResolver:
    """Writer schemas by id and schema ids by (subject, schema), both cached for the process."""

    def __init__(self, client: AsyncSchemaRegistryClient) -> None:
        self._client = client
        self._by_id: dict[int, dict[str, Any]] = {}

    def cached(self, schema_id: int) -> dict[str, Any] | None:
        parsed = self._by_id.get(schema_id)
        if parsed is not None:
            _writer_hit.inc()
        return parsed

    async def writer(self, schema_id: int) -> dict[str, Any]:
        """The parsed writer schema of ``schema_id``: UNKNOWN_SCHEMA_ID if the registry has none."""
        parsed = self.cached(schema_id)
        if parsed is not None:
            return parsed
        _writer_miss.inc()
        try:
            schema = await self._client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            _writer_error.inc()
            if exc.http_status_code == 404:
                raise SyncError(ReasonCode.UNKNOWN_SCHEMA_ID, f"schema id {schema_id}: {exc}") from exc
            raise TransientError(ReasonCode.REGISTRY_UNAVAILABLE, f"schema id {schema_id}: {exc}") from exc
        except NETWORK_ERRORS as exc:
            _writer_error.inc()
            raise _unreachable(exc, f"schema id {schema_id}") from exc
        parsed = parse(schema.schema_str)
        self._by_id[schema_id] = parsed
        return parsed

    async def id_for(self, subject: str, schema: dict[str, Any], register: bool = False) -> int:
        """The id of ``schema`` under ``subject``; registers it only when asked to."""
        wanted = Schema(json.dumps(schema), "AVRO")
        _id_miss.inc()  # callers cache the id (one lookup per topic and process)
        try:
            if register:
                schema_id = await self._client.register_schema(subject, wanted)
            else:
                schema_id = (await self._client.lookup_schema(subject, wanted)).schema_id
        except SchemaRegistryError as exc:
            _id_error.inc()
            if exc.http_status_code == 404:
                raise SyncError(
                    ReasonCode.UNKNOWN_SCHEMA_ID,
                    f"{subject} has no such schema; run `crm-erp-sync schemas register`",
                ) from exc
            raise TransientError(ReasonCode.REGISTRY_UNAVAILABLE, f"{subject}: {exc}") from exc
        except NETWORK_ERRORS as exc:
            _id_error.inc()
            raise _unreachable(exc, subject) from exc
        self._by_id.setdefault(schema_id, parse(schema))
        return schema_id
