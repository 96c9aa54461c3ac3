"""What every agent does around its per-event work: retry what is transient, quarantine the rest.

Faust acks an event whose handler raises, so nothing may escape: a transient error (registry or
broker down) is retried in place with backoff — the partition waits, nothing is skipped — and any
other error sends the original bytes, with the reason and source coordinates in headers, to the
dead-letter topic. A dead-letter send that fails is retried too: the event is acked only once it
is safe somewhere.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Awaitable, Callable

from faust.types import EventT, TopicT

from app.domain.errors import ReasonCode, SyncError

log = logging.getLogger(__name__)

BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 30.0


def _headers(event: EventT, reason: str, detail: str) -> list[tuple[str, bytes]]:
    msg = event.message
    original = (
        [(k, v) for k, v in (msg.headers or [])] if isinstance(msg.headers, list) else list((msg.headers or {}).items())
    )
    return [
        *original,
        ("x-reason", reason.encode()),
        ("x-detail", detail[:2000].encode(errors="replace")),
        ("x-source-topic", msg.topic.encode()),
        ("x-source-partition", str(msg.partition).encode()),
        ("x-source-offset", str(msg.offset).encode()),
        ("x-quarantined-at", str(int(time.time() * 1000)).encode()),
    ]


async def _until_sent(send: Callable[[], Awaitable[object]], what: str) -> None:
    delay = BACKOFF_START_S
    while True:
        try:
            await send()
            return
        except Exception as exc:
            log.warning("%s failed (%r); retrying in %.1fs", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX_S)


async def quarantine(dead_letter: TopicT, event: EventT, reason: str, detail: str) -> None:
    msg = event.message
    log.error("quarantined %s[%s]@%s: %s %s", msg.topic, msg.partition, msg.offset, reason, detail[:300])
    await _until_sent(
        lambda: dead_letter.send(key=msg.key, value=msg.value, headers=_headers(event, reason, detail)),
        "dead-letter send",
    )


async def guarded(dead_letter: TopicT, event: EventT, handle: Callable[[], Awaitable[None]]) -> None:
    """Run ``handle`` for ``event`` so that no exception escapes and nothing is lost."""
    delay = BACKOFF_START_S
    while True:
        try:
            await handle()
            return
        except SyncError as exc:
            if exc.transient:
                log.warning("transient %s; retrying in %.1fs: %s", exc.reason, delay, exc.detail)
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            await quarantine(dead_letter, event, exc.reason, exc.detail)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            detail = "".join(traceback.format_exception_only(exc)).strip()
            await quarantine(dead_letter, event, ReasonCode.UNEXPECTED_ERROR, detail)
            return
