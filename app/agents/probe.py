"""The pipeline probe: decode an Avro probe, answer with an Avro result. An end-to-end canary.

It proves the path the real flows take — wire-format decode with the writer schema from the
registry, re-encode with a registered id, produce — and gives operators a way to measure it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.engine.bootstrap import Engine

PROBE = "io.crmerpsync.sync.PipelineProbe"
RESULT = "io.crmerpsync.sync.PipelineProbeResult"


def register(engine: Engine) -> None:
    """The probe agent, on the engine's app."""
    app, settings, runtime = engine.app, engine.settings, engine.runtime
    probes = app.topic(settings.topic("sync.probe"), key_serializer="raw", value_serializer="raw")
    results = app.topic(settings.topic("sync.probe-results"), key_serializer="raw", value_serializer="raw")
    decoder = runtime.decoder(PROBE)

    @app.agent(probes, name=f"{__name__}.answer_probes")
    async def answer_probes(stream):
        async for event in stream.events():

            async def handle(event=event) -> None:
                decoded = await decoder.decode(event.value)
                msg = event.message
                result = {
                    **decoded.value,
                    "processed_at": int(time.time() * 1000),
                    "source_partition": msg.partition,
                    "source_offset": msg.offset,
                    "writer_schema_id": decoded.schema_id,
                }
                encoder = await runtime.encoder(results.get_topic_name(), RESULT)
                await results.send(key=event.key, value=encoder.encode(result))

            await engine.guard.guarded(event, handle)
