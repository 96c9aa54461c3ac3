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
from dataclasses import dataclass

from aiokafka.errors import MessageSizeTooLargeError
from faust.exceptions import PartitionsMismatch, ProducerSendError
from faust.types import EventT

from app.catalog import default_catalog
from app.domain.errors import ReasonCode, SyncError, TransientError
from app.domain.exceptions import retries
from app.domain.outputs import ExceptionRaised
from app.engine.outputs import Outputs
from app.observe import blocked, logs, metrics

log = logging.getLogger(__name__)

BACKOFF_START_S = 0.2
BACKOFF_MAX_S = 30.0


def tiers(retry_delays: str) -> list[tuple[str, float]]:
    """The retry tiers of ``CRM_ERP_RETRY_DELAYS``; a tier without its topic in the catalog is refused."""
    found = retries.parse_tiers(retry_delays)
    unknown = [t for t, _ in found if f"sync.retry.{t}" not in {s.name for s in default_catalog()}]
    if unknown:
        raise ValueError(
            f"CRM_ERP_RETRY_DELAYS names tiers without a sync.retry.<tier> topic in the catalog: {unknown}"
        )
    return found


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


# broker error codes that a retry cannot fix: corrupt or invalid record, message or batch too large,
# invalid topic, required acks, topic or cluster authorization, message format
PERMANENT_CODES = frozenset({2, 10, 17, 18, 21, 29, 31, 43, 87})


def permanent(exc: BaseException) -> bool:
    """True for a send the broker (or librdkafka) refuses for good."""
    code = getattr(exc, "code", None)
    cause = exc.__cause__
    return code in PERMANENT_CODES or getattr(cause, "errno", None) in PERMANENT_CODES


@dataclass(frozen=True, slots=True)
class _Copies:
    """A quarantine's two records: the dead letter and the exception record."""

    key: bytes | None
    value: bytes | None
    dead_headers: list[tuple[str, bytes]]
    exception: ExceptionRaised


class Guard:
    """The quarantine and retry-tier handling every agent runs its per-event work inside."""

    def __init__(self, outputs: Outputs) -> None:
        self.outputs, self.app, self.settings = outputs, outputs.app, outputs.settings
        self.tiers = tiers(self.settings.retry_delays)
        self.copy_limit = outputs.limit  # the largest record a quarantine or a retry tier may write

    def _full_copies(
        self, event: EventT, reason: str, detail: str, correlation_id: str | None, now: dt.datetime
    ) -> _Copies:
        msg = event.message
        coords = retries.Coordinates(msg.topic, msg.partition, msg.offset)
        plan = retries.copy_plan(msg.key, msg.value, headers_of(event), self.copy_limit)
        if plan.dropped_bytes is not None:
            detail = f"{detail} [not copied: {plan.dropped_bytes} bytes; the original stays at {coords.label}]"
        if plan.dropped_header_bytes is not None:
            detail = f"{detail} [original headers not copied: {plan.dropped_header_bytes} bytes]"
        record = retries.exception_record(
            coords, reason, detail, plan.key, plan.value, plan.headers, correlation_id, now
        )
        dead = retries.dead_letter_headers(plan.headers, coords, reason, detail, record["exception_id"], now)
        if plan.dropped_bytes is not None:
            dead.append(("x-payload-dropped", str(plan.dropped_bytes).encode()))
        exception = ExceptionRaised(correlation_id or coords.label, record)
        return _Copies(plan.key, plan.value, dead, exception)

    async def _deliver(self, topic_name: str, key: bytes | None, value: bytes | None, headers: list | None) -> None:
        """Send and wait for the delivery; a failure is raised here and does not fail the worker's flush."""
        await (await self.app.producer.produce_owned(topic_name, key, value, headers or None))

    async def _send_copies(self, c: _Copies) -> None:
        [ready] = await self.outputs.prepare([c.exception])
        await self._deliver(self.settings.topic("sync.dead-letter"), c.key, c.value, c.dead_headers)
        await self._deliver(ready.topic, ready.key, ready.value, list(ready.headers))

    async def quarantine(self, event: EventT, reason: str, detail: str, correlation_id: str | None = None) -> None:
        """Dead-letter the message and raise its exception record; returns once both are on the broker.

        Never raises. If the full records cannot be built (a hostile header, say) or the broker refuses
        them for good, minimal records with the coordinates and ``QUARANTINE_FAILED`` take their place.
        If even those are refused for good, the partition stops here, said by the log, ``/ready`` and
        ``crm_erp_sync_quarantine_blocked``, and they are retried until they go through."""
        msg = event.message
        label = f"{msg.topic}/{msg.partition}/{msg.offset}"
        now = dt.datetime.now(dt.UTC)
        attempts = []
        try:
            attempts.append(self._full_copies(event, reason, detail, correlation_id, now))
        except Exception as exc:
            log.error(
                "quarantine of %s: the full record could not be built (%r); keeping only its coordinates", label, exc
            )
        attempts.append(_minimal_copies(event, reason, detail, correlation_id, now))
        for i, copies in enumerate(attempts):
            last = i == len(attempts) - 1
            delay = BACKOFF_START_S
            while True:
                try:
                    await self._send_copies(copies)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if permanent(exc) or not isinstance(exc, (TransientError, ProducerSendError)):
                        if not last:
                            log.error(
                                "quarantine of %s refused for good (%r); sending its coordinates only", label, exc
                            )
                            break
                        blocked.hold(label, f"{type(exc).__name__}: {exc}")
                        log.critical("quarantine of %s cannot be written (%r): the partition waits here", label, exc)
                    else:
                        log.warning("quarantine of %s failed (%r); retrying in %.1fs", label, exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, BACKOFF_MAX_S)
                    continue
                blocked.release(label)
                record = copies.exception.value
                log.error(
                    "quarantined %s: %s %s",
                    label,
                    record["reason_code"],
                    record["detail"][:300],
                    extra={"reason_code": record["reason_code"], "exception_id": record["exception_id"]},
                )
                metrics.quarantined.labels(reason=record["reason_code"]).inc()
                return

    async def _to_retry_tier(self, event: EventT, exc: SyncError) -> bool:
        """Hand the message to its next retry tier; False when every tier has been tried, or when the
        message is too large for a tier to carry whole (it is quarantined by its coordinates instead)."""
        msg = event.message
        headers = headers_of(event)
        plan = retries.copy_plan(msg.key, msg.value, headers, self.copy_limit)
        if plan.dropped_bytes is not None or plan.dropped_header_bytes is not None:
            return False
        step = retries.next_step(headers, self.tiers, msg.topic, time.time())
        if step is None:
            return False
        tier, new_headers = step
        coords = retries.Coordinates(msg.topic, msg.partition, msg.offset)
        new_headers += retries.reason_headers(coords, exc.reason, exc.detail)
        log.warning(
            "%s: %s persists; %s@%s moves to retry tier %s", exc.reason, exc.detail, msg.topic, msg.offset, tier
        )
        tier_topic = self.outputs.topic(f"sync.retry.{tier}")
        await until_sent(
            lambda: tier_topic.send(key=msg.key, value=msg.value, headers=new_headers), f"retry tier {tier} send"
        )
        metrics.retried.labels(tier=tier).inc()
        return True

    async def guarded(
        self,
        event: EventT,
        handle: Callable[[], Awaitable[None]],
        correlation_id: Callable[[], str | None] | None = None,
    ) -> None:
        """Run ``handle`` for ``event`` so that no exception escapes and nothing is lost."""
        msg = event.message
        with logs.context(correlation_id=_safe(correlation_id), source=f"{msg.topic}/{msg.partition}/{msg.offset}"):
            await self._guarded(event, handle, correlation_id)

    async def _guarded(
        self, event: EventT, handle: Callable[[], Awaitable[None]], correlation_id: Callable[[], str | None] | None
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
                    if attempts <= self.settings.retry_in_place:
                        log.warning("transient %s; retrying in %.1fs: %s", exc.reason, delay, exc.detail)
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, BACKOFF_MAX_S)
                        continue
                    if await self._to_retry_tier(event, exc):
                        return
                    detail = f"{exc.detail} (still failing after every retry tier)"
                    await self.quarantine(event, exc.reason, detail, _safe(correlation_id))
                    return
                await self.quarantine(event, exc.reason, exc.detail, _safe(correlation_id))
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                detail = "".join(traceback.format_exception_only(exc)).strip()
                await self.quarantine(event, ReasonCode.UNEXPECTED_ERROR, detail, _safe(correlation_id))
                return


def _minimal_copies(event: EventT, reason: str, detail: str, correlation_id: str | None, now: dt.datetime) -> _Copies:
    """Coordinates and reason only: nothing of the message that could make the records fail again."""
    msg = event.message
    coords = retries.Coordinates(msg.topic, msg.partition, msg.offset)
    detail = f"{reason}: {detail}"[:500] + f" [only coordinates kept; the original stays at {coords.label}]"
    failed = ReasonCode.QUARANTINE_FAILED
    record = retries.exception_record(coords, failed, detail, None, None, [], correlation_id, now)
    dead = retries.dead_letter_headers([], coords, failed, detail, record["exception_id"], now)
    return _Copies(None, None, dead, ExceptionRaised(correlation_id or coords.label, record))


def _safe(correlation_id: Callable[[], str | None] | None) -> str | None:
    try:
        return correlation_id() if correlation_id else None
    except Exception:
        return None
