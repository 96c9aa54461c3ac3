"""What every agent does around its per-event work: retry what is transient, quarantine the rest.

Faust acks an event whose handler raises, so nothing may escape.

* A transient error (registry or broker down) is retried in place a few times
  (``CRM_ERP_RETRY_IN_PLACE``, short backoff). If it persists, the original message moves to the
  next retry tier (``sync.retry.<tier>``), and the tier's agent sends it back to its source topic
  once the tier's delay has passed. The partition keeps flowing meanwhile. Per-row source
  positions decide what a late copy may still change (see README: retries supersede).
* After the last tier, and at once for any other error, the message is quarantined. The original
  bytes go to the dead-letter topic with the reason and source coordinates in headers, and an
  ExceptionRecord carries the same context to the exception state. The event is acked only once
  both are safely sent: a send that fails is retried.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import traceback
from collections.abc import Awaitable, Callable

from aiokafka.errors import MessageSizeTooLargeError
from faust.exceptions import PartitionsMismatch, ProducerSendError
from faust.types import EventT

from app.agents import outputs
from app.catalog import default_catalog
from app.domain import retries
from app.domain.errors import ReasonCode, SyncError, TransientError
from app.domain.outputs import EXCEPTION, Output
from app.faust_app import app, settings
from app.ops import logs, metrics

log = logging.getLogger(__name__)

BACKOFF_START_S = 0.2
# what a quarantine may copy of a message: the producer's request limit, less room for headers and the record
COPY_LIMIT = app.conf.producer_max_request_size - 64 * 1024
BACKOFF_MAX_S = 30.0
TIERS = retries.parse_tiers(settings.retry_delays)
_unknown = [t for t, _ in TIERS if f"sync.retry.{t}" not in {s.name for s in default_catalog()}]
if _unknown:
    raise ValueError(f"CRM_ERP_RETRY_DELAYS names tiers without a sync.retry.<tier> topic in the catalog: {_unknown}")


def headers_of(event: EventT) -> list[tuple[str, bytes]]:
    raw = event.message.headers or []
    return list(raw.items()) if isinstance(raw, dict) else [(k, v) for k, v in raw]


def replay_headers(event: EventT) -> list[tuple[str, bytes]] | None:
    """The ``x-replay-*`` headers of a replayed message (None for an ordinary one)."""
    found = [(k, v) for k, v in headers_of(event) if k.startswith("x-replay-")]
    return found or None


async def until_sent(send: Callable[[], Awaitable[object]], what: str) -> None:
    delay = BACKOFF_START_S
    while True:
        try:
            await send()
            return
        except Exception as exc:
            log.warning("%s failed (%r); retrying in %.1fs", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX_S)


async def quarantine(event: EventT, reason: str, detail: str, correlation_id: str | None = None) -> None:
    msg = event.message
    coords = retries.Coordinates(msg.topic, msg.partition, msg.offset)
    headers = headers_of(event)
    now = dt.datetime.now(dt.UTC)
    key, value, dropped = retries.within_limit(msg.key, msg.value, COPY_LIMIT)
    if dropped is not None:
        detail = f"{detail} [not copied: {dropped} bytes; the original stays at {coords.label}]"
    record = retries.exception_record(coords, reason, detail, key, value, headers, correlation_id, now)
    log.error(
        "quarantined %s[%s]@%s: %s %s",
        *(msg.topic, msg.partition, msg.offset, reason, detail[:300]),
        extra={"reason_code": str(reason), "exception_id": record["exception_id"]},
    )
    dead = retries.dead_letter_headers(headers, coords, reason, detail, record["exception_id"], now)
    if dropped is not None:
        dead.append(("x-payload-dropped", str(dropped).encode()))
    exception = Output("sync.exceptions", correlation_id or coords.label, EXCEPTION, record)

    async def send() -> None:
        ready = await outputs.prepare([exception])
        await outputs.topic("sync.dead-letter").send(key=key, value=value, headers=dead)
        await outputs.send(ready)

    await until_sent(send, "quarantine")
    metrics.quarantined.labels(reason=reason).inc()


async def _to_retry_tier(event: EventT, exc: SyncError) -> bool:
    """Hand the message to its next retry tier; False when every tier has been tried."""
    msg = event.message
    if retries.within_limit(msg.key, msg.value, COPY_LIMIT)[2] is not None:
        return False  # too large to copy to a tier: quarantined (by its coordinates) instead
    headers = headers_of(event)
    step = retries.next_step(headers, TIERS, msg.topic, time.time())
    if step is None:
        return False
    tier, new_headers = step
    coords = retries.Coordinates(msg.topic, msg.partition, msg.offset)
    new_headers += retries.reason_headers(coords, exc.reason, exc.detail)
    log.warning("%s: %s persists; %s@%s moves to retry tier %s", exc.reason, exc.detail, msg.topic, msg.offset, tier)
    await until_sent(
        lambda: outputs.topic(f"sync.retry.{tier}").send(key=msg.key, value=msg.value, headers=new_headers),
        f"retry tier {tier} send",
    )
    metrics.retried.labels(tier=tier).inc()
    return True


async def guarded(
    event: EventT, handle: Callable[[], Awaitable[None]], correlation_id: Callable[[], str | None] | None = None
) -> None:
    """Run ``handle`` for ``event`` so that no exception escapes and nothing is lost."""
    msg = event.message
    with logs.context(correlation_id=_safe(correlation_id), source=f"{msg.topic}/{msg.partition}/{msg.offset}"):
        await _guarded(event, handle, correlation_id)


async def _guarded(
    event: EventT, handle: Callable[[], Awaitable[None]], correlation_id: Callable[[], str | None] | None
) -> None:
    delay, attempts = BACKOFF_START_S, 0
    while True:
        try:
            try:
                await handle()
            except PartitionsMismatch as exc:  # seen right after start: a new changelog not in metadata yet
                raise TransientError(ReasonCode.BROKER_METADATA, str(exc).replace("\n", " ")) from exc
            except ProducerSendError as exc:  # Faust wraps the producer's error
                if isinstance(exc.__cause__, MessageSizeTooLargeError):  # e.g. a huge CDC row, re-keyed
                    raise SyncError(ReasonCode.MESSAGE_TOO_LARGE, str(exc.__cause__)) from exc
                raise
            return
        except SyncError as exc:
            if exc.transient:
                attempts += 1
                if attempts <= settings.retry_in_place:
                    log.warning("transient %s; retrying in %.1fs: %s", exc.reason, delay, exc.detail)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, BACKOFF_MAX_S)
                    continue
                if await _to_retry_tier(event, exc):
                    return
                detail = f"{exc.detail} (still failing after every retry tier)"
                await quarantine(event, exc.reason, detail, _safe(correlation_id))
                return
            await quarantine(event, exc.reason, exc.detail, _safe(correlation_id))
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            detail = "".join(traceback.format_exception_only(exc)).strip()
            await quarantine(event, ReasonCode.UNEXPECTED_ERROR, detail, _safe(correlation_id))
            return


def _safe(correlation_id: Callable[[], str | None] | None) -> str | None:
    try:
        return correlation_id() if correlation_id else None
    except Exception:
        return None
