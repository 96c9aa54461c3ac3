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


def parse(schema: dict[str, Any] | str) -> dict[str, Any]:
    return fastavro.parse_schema(json.loads(schema) if isinstance(schema, str) else schema)


# the registry did not answer: a transport error of either httpx the clients use, or the socket itself
NETWORK_ERRORS = (httpx.HTTPError, httpx2.HTTPError, OSError)


class SchemaResolver:
    """Writer schemas by id and schema ids by (subject, schema), both cached for the process."""

    def __init__(self, client: AsyncSchemaRegistryClient) -> None:
        self._client = client
        self._by_id: dict[int, dict[str, Any]] = {}

    @classmethod
    def for_url(cls, url: str, extra: dict[str, Any] | None = None) -> SchemaResolver:
        return cls(AsyncSchemaRegistryClient({"url": url, **(extra or {})}))

    def cached(self, schema_id: int) -> dict[str, Any] | None:
        return self._by_id.get(schema_id)

    async def writer(self, schema_id: int) -> dict[str, Any]:
        """The parsed writer schema of ``schema_id``: UNKNOWN_SCHEMA_ID if the registry has none."""
        parsed = self.cached(schema_id)
        if parsed is not None:
            return parsed
        try:
            schema = await self._client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise SyncError(ReasonCode.UNKNOWN_SCHEMA_ID, f"schema id {schema_id}: {exc}") from exc
            raise TransientError(ReasonCode.REGISTRY_UNAVAILABLE, f"schema id {schema_id}: {exc}") from exc
        except NETWORK_ERRORS as exc:
            raise TransientError(ReasonCode.REGISTRY_UNAVAILABLE, f"schema id {schema_id}: {exc!r}") from exc
        parsed = parse(schema.schema_str)
        self._by_id[schema_id] = parsed
        return parsed

    async def id_for(self, subject: str, schema: dict[str, Any], register: bool = False) -> int:
        """The id of ``schema`` under ``subject``; registers it only when asked to."""
        wanted = Schema(json.dumps(schema), "AVRO")
        try:
            if register:
                schema_id = await self._client.register_schema(subject, wanted)
            else:
                schema_id = (await self._client.lookup_schema(subject, wanted)).schema_id
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise SyncError(
                    ReasonCode.UNKNOWN_SCHEMA_ID,
                    f"{subject} has no such schema; run `crm-erp-sync schemas register`",
                ) from exc
            raise TransientError(ReasonCode.REGISTRY_UNAVAILABLE, f"{subject}: {exc}") from exc
        except NETWORK_ERRORS as exc:
            raise TransientError(ReasonCode.REGISTRY_UNAVAILABLE, f"{subject}: {exc!r}") from exc
        self._by_id.setdefault(schema_id, parse(schema))
        return schema_id
