"""Per-process resources the agents share: the registry resolver and encoders bound to schema ids."""

from __future__ import annotations

import asyncio

from app.contracts import default_index
from app.serde.avro import AvroDecoder, AvroEncoder
from app.serde.registry import SchemaResolver
from app.settings import get_settings


class Runtime:
    """Lazily resolves, once per process, what the agents need from the registry."""

    def __init__(self) -> None:
        self.settings = get_settings()
        self.resolver = SchemaResolver.for_url(self.settings.registry_url)
        self._encoders: dict[str, AvroEncoder] = {}
        self._lock = asyncio.Lock()

    def decoder(self, contract: str | None = None) -> AvroDecoder:
        reader = default_index().expanded(contract) if contract else None
        return AvroDecoder(self.resolver, reader)

    async def encoder(self, topic: str, contract: str) -> AvroEncoder:
        """An encoder for ``<topic>-value`` with the registered id of ``contract`` (never auto-registers)."""
        enc = self._encoders.get(topic)
        if enc is None:
            async with self._lock:
                enc = self._encoders.get(topic)
                if enc is None:
                    schema = default_index().expanded(contract)
                    schema_id = await self.resolver.id_for(f"{topic}-value", schema)
                    enc = self._encoders[topic] = AvroEncoder(schema_id, schema)
        return enc


runtime = Runtime()
