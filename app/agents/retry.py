"""Retry tiers: hold each message until its tier's delay has passed, then send it back to its topic.

One agent per tier topic (``sync.retry.<tier>``). Messages of a tier arrive in due order, so
waiting for the head of the stream delays nothing that is already due. The wait is in short
steps: on a rebalance or shutdown the message is put back on its tier (same due time) instead of
holding the group up. The main flows never wait for a retry.
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import TYPE_CHECKING

from app.catalog import default_catalog
from app.domain.exceptions import retries
from app.engine.guard import headers_of, until_sent
from app.observe import metrics

if TYPE_CHECKING:
    from app.engine.bootstrap import Engine

STEP_S = 0.5
# catalog topics the domain re-sends through the tiers (a create after a retryable ERP rejection)
RESENDABLE = ("erp.commands.sales-order",)


def register(engine: Engine) -> None:
    """One holding agent per retry tier, on the engine's app."""
    app, settings, outputs = engine.app, engine.settings, engine.outputs
    resendable = {name: settings.topic(name) for name in RESENDABLE}

    @functools.cache
    def consumed() -> frozenset[str]:
        """The catalog topics this worker's agents read, retry tiers excluded: where a due message may
        return. Computed on first use, once every agent exists."""
        catalog = {settings.topic(s.name) for s in default_catalog() if not s.name.startswith("sync.retry.")}
        channels = {name for agent in app.agents.values() for name in getattr(agent.channel, "topics", ())}
        return frozenset(catalog & channels)

    def retry_agent(tier: str) -> None:
        topic = outputs.topic(f"sync.retry.{tier}")
        returned = metrics.retry_returned.labels(tier=tier)

        async def hold(event) -> None:
            msg = event.message
            headers = headers_of(event)
            due_ms = retries.header_int(headers, "x-retry-due-ms") or 0
            target = retries.retry_target(headers, consumed(), resendable)  # BAD_CONTROL_HEADER: quarantined
            while (remaining := due_ms / 1000 - time.time()) > 0 and not (app.rebalancing or app.should_stop):
                await asyncio.sleep(min(remaining, STEP_S))
            destination = topic if time.time() * 1000 < due_ms else outputs.raw_topic(target)
            await until_sent(
                lambda: destination.send(key=msg.key, value=msg.value, headers=headers), f"retry tier {tier} return"
            )
            if destination is not topic:
                returned.inc()

        async def hold_and_return(stream):
            async for event in stream.events():
                await engine.guard.guarded(event, lambda event=event: hold(event))  # a malformed header: quarantined

        hold_and_return.__name__ = f"retry_{tier.replace('-', '_')}"
        app.agent(topic, name=f"retry-{tier}")(hold_and_return)

    for tier, _ in engine.guard.tiers:
        retry_agent(tier)
