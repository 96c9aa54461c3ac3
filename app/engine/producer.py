"""Faust's Kafka producer with librdkafka (confluent-kafka) doing the sending: the cheap send path.

Why: every event of this service produces about five messages (the deal hop, table changelogs,
commands, audit, parity facts). With aiokafka each send runs in Python on the worker's one event
loop: the accumulator, the sender task that builds and encodes produce requests, the connection
writes and the response parsing. On the 2-core benchmark machine that was about a fifth of the
worker's samples (README, Performance). Here Python pays one ``produce()`` call and one delivery
report per message; batching, encoding and I/O run in librdkafka's own threads, outside the GIL.

What stays Faust's and aiokafka's: the producer buffer and sensors, topic creation and
``key_partition`` (the parent class starts its aiokafka producer for those). librdkafka's
``murmur2_random`` partitioner is the Java and aiokafka one for keyed messages, so an unpartitioned
send lands where Faust's ``key_partition`` and Kafka's own clients would put it. Transactions are
not used by this service; a transactional send is left to the parent.

Guarantees: ``acks=all`` and idempotence (no duplicates or reordering when librdkafka retries).
``flush()``, which Faust awaits before every offset commit, returns only when every message sent
before it has its delivery report, so an input offset is never committed ahead of its outputs. A
delivery that failed (librdkafka retries until ``message.timeout.ms``) makes every later ``flush()``
raise: the commit fails and the worker stops, to re-read and re-send from the last commit on restart.
Stock Faust only logs such a failure and commits past the lost message.

``produce()`` is the agents' hot path: the same send without Faust's per-message future, sensors
and callbacks, which cost more than librdkafka itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from functools import cached_property, partial
from typing import Any

import aiokafka.errors
import confluent_kafka
import faust
from faust.exceptions import ProducerSendError
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types.tuples import TP, RecordMetadata

from app.client_config import kafka_config
from app.engine import consumer as eager_consumer
from app.engine.checkpoint import Checkpoint
from app.settings import get_settings

_SERVE_BUSY_S = 0.002  # how often the loop serves delivery reports while sends are outstanding
_SERVE_IDLE_S = 0.05  # ... and when none are
# future, offset callback (None: a Faust send, settled with its RecordMetadata), error, message
_Report = tuple[asyncio.Future, Callable[[int], None] | None, Any, Any]


class Producer(faust_aiokafka.Producer):
    """Sends through ``confluent_kafka.Producer``; delivery reports settle asyncio futures in batches."""

    _rd: confluent_kafka.Producer | None = None

    def _rd_config(self) -> dict[str, Any]:
        return kafka_config(
            get_settings(),
            {
                "client.id": self.client_id,
                "acks": "all" if self.acks == -1 else str(self.acks),
                "enable.idempotence": self.acks == -1,
                "linger.ms": self.linger_ms,
                "partitioner": "murmur2_random",
                "compression.type": self.compression_type or "none",
                "message.max.bytes": self.max_request_size,
            },
        )

    async def on_start(self) -> None:
        await super().on_start()
        self._owner_loop = asyncio.get_running_loop()
        self._rd = confluent_kafka.Producer(self._rd_config())
        self._reports: list[_Report] = []  # filled by rd.poll's callbacks, taken by _settle
        self._outstanding: set[asyncio.Future] = set()  # sent, no delivery report yet
        self._failed: list[ProducerSendError] = []  # deliveries that failed: every later flush raises
        self._owned: set[asyncio.Future] = set()  # sends whose caller awaits and handles their failure
        self._server = asyncio.create_task(self._serve_reports(), name="rdkafka-deliveries")

    async def on_stop(self) -> None:
        rd, self._rd = self._rd, None
        if rd is not None:
            self._server.cancel()
            await asyncio.gather(self._server, return_exceptions=True)
            await asyncio.to_thread(rd.flush, 30)  # its reports are appended on that thread
            self._settle(self._take_reports())
        await super().on_stop()

    async def _serve_reports(self) -> None:
        """Serve delivery reports on the event loop, not on a thread of their own: librdkafka calls
        each report's callback on the thread that polls, and a polling thread had to win the GIL
        back from the busy loop for every report. Under a backlog, reports then reached the loop
        2-6 s after the broker had acknowledged them (librdkafka's round trip stayed below 10 ms),
        each commit's flush waited that long, and a worker killed mid-stream re-read that much."""
        rd = self._rd
        while True:
            rd.poll(0)
            if self._reports:
                self._settle(self._take_reports())
            await asyncio.sleep(_SERVE_BUSY_S if self._outstanding else _SERVE_IDLE_S)

    def _take_reports(self) -> list[_Report]:
        reports, self._reports = self._reports, []
        return reports

    def _delivered(self, fut: asyncio.Future, on_offset: Callable[[int], None] | None, err: Any, msg: Any) -> None:
        self._reports.append((fut, on_offset, err, msg))

    def _settle(self, reports: list[_Report]) -> None:
        """Settle each report's future. Whatever goes wrong with one report (a failed delivery, or
        an offset callback that raises) fails that send alone: the others settle, and the next
        flush raises, so the commit fails rather than hang or pass the message."""
        outstanding, owned = self._outstanding, self._owned
        for fut, on_offset, err, msg in reports:
            outstanding.discard(fut)
            handled_by_caller = fut in owned
            owned.discard(fut)
            if fut.done():
                continue
            try:
                if err is not None:
                    raise _send_error(msg.topic(), err)
                if on_offset is None:  # a Faust send: its callbacks read the metadata
                    topic, partition = msg.topic(), msg.partition()
                    ts_type, ts = msg.timestamp()
                    fut.set_result(RecordMetadata(topic, partition, TP(topic, partition), msg.offset(), ts, ts_type))
                else:
                    on_offset(msg.offset())
                    fut.set_result(None)
            except Exception as exc:
                error = exc if isinstance(exc, ProducerSendError) else _report_error(msg.topic(), exc)
                if handled_by_caller:  # it falls back on its own: the producer stays usable
                    fut.set_exception(error)
                    continue
                self._failed.append(error)
                fut.set_exception(error)
                fut.exception()  # retrieved: flush() reports it, for sends nobody awaits too

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
        *,
        transactional_id: str | None = None,
    ) -> asyncio.Future:
        if transactional_id or self._rd is None:
            return await super().send(
                topic, key, value, partition, timestamp, headers, transactional_id=transactional_id
            )
        if isinstance(headers, Mapping):
            headers = list(headers.items())
        self._send_on_produce_message(key=key, value=value, partition=partition, timestamp=timestamp, headers=headers)
        return await self._produce(topic, key, value, partition, int(timestamp * 1000) if timestamp else 0, headers)

    async def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None,
        partition: int | None = None,
    ) -> None:
        """Send past Faust's per-message machinery (its message future, sensors and callbacks), for
        outputs whose delivery nobody awaits one by one. Partitioned by key as ``send`` is, unless
        ``partition`` is given; covered by ``flush`` as ``send`` is, and a failed delivery makes
        ``flush`` raise."""
        if self._rd is None:  # not started or already stopped: where ``send`` goes then
            await self.send(topic, key, value, partition, None, headers)
            return
        await self._produce(topic, key, value, partition, 0, headers, _ignore)

    async def _produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        ts_ms: int,
        headers: Any,
        on_offset: Callable[[int], None] | None = None,
    ) -> asyncio.Future:
        fut = self._owner_loop.create_future()
        while True:
            try:
                self._rd.produce(
                    topic,
                    value=value,
                    key=key,
                    partition=-1 if partition is None else partition,
                    timestamp=ts_ms,
                    headers=headers,
                    on_delivery=partial(self._delivered, fut, on_offset),
                )
                break
            except BufferError:  # librdkafka's queue is full: let the loop serve delivery reports to drain it
                await asyncio.sleep(0.01)
            except confluent_kafka.KafkaException as exc:
                error = _send_error(topic, exc.args[0])
                raise error from error.__cause__
        self._outstanding.add(fut)
        return fut

    async def produce_owned(
        self, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]] | None
    ) -> asyncio.Future:
        """A send whose caller awaits the returned delivery future and handles its failure itself (the
        quarantine path, which falls back to a smaller record): a failed delivery fails that future
        only, never every later flush. Raises at once what librdkafka refuses synchronously."""
        if self._rd is None:
            return await self.send(topic, key, value, None, None, headers)
        fut = await self._produce(topic, key, value, None, 0, headers)
        self._owned.add(fut)
        return fut

    async def produce_changelog(
        self, topic: str, key: bytes, value: bytes | None, partition: int, on_offset: Callable[[int], None]
    ) -> None:
        """A table's changelog record (app/engine/checkpoint.py): ``on_offset`` gets its offset once it
        is delivered; a failed delivery fails the next flush, and with it the commit."""
        await self._produce(topic, key, value, partition, 0, None, on_offset)

    async def flush(self) -> None:
        """Wait for the delivery of every message sent before the call, not for the producer to go
        idle: Faust computes the offsets it commits before it flushes, and under steady load an idle
        producer may never come (commits then took 3 s at half the maximum rate)."""
        await self.buffer.flush()  # Faust's own pending sends reach produce() first
        if self._rd is not None:
            if self._outstanding:
                await asyncio.wait(list(self._outstanding))
            if self._failed:  # Faust would commit past a lost output: the commit fails, the worker stops
                raise self._failed[0]
        await super().flush()


def _ignore(offset: int) -> None:
    """The offset callback of a send whose metadata nobody reads: its future settles with None."""


def _report_error(topic: str, exc: Exception) -> ProducerSendError:
    """A delivery to ``topic`` whose report could not be handled: the send counts as failed."""
    error = ProducerSendError(f"Delivery report from {topic} not handled: {exc!r}")
    error.__cause__ = exc
    return error


def _send_error(topic: str, err: confluent_kafka.KafkaError) -> ProducerSendError:
    """Faust's send error, caused by aiokafka's error class for the broker's code, as with aiokafka
    (so ``MessageSizeTooLargeError`` still tells the guard that a record is too large to forward)."""
    cause = aiokafka.errors.for_code(err.code()) if err.code() > 0 else aiokafka.errors.KafkaError
    exc = ProducerSendError(f"Error while sending to {topic}: {err}")
    exc.__cause__ = cause(err.str())
    exc.code = err.code()  # type: ignore[attr-defined] - what tells a permanent refusal from an outage
    return exc


class Transport(faust_aiokafka.Transport):
    """aiokafka's transport (admin) with the eager-drain consumer and the librdkafka producer."""

    Consumer = eager_consumer.Consumer
    Producer = Producer


class App(faust.App):
    """``faust.App`` whose transport sends through librdkafka (see the module docstring), and whose
    table rows are written at each commit (app/engine/checkpoint.py)."""

    def _new_transport(self) -> Transport:
        return Transport(self.conf.broker_consumer, self)

    @cached_property
    def checkpoint(self) -> Checkpoint:
        return Checkpoint(self)

    async def _consumer_wait_empty(self, consumer: Any, logger: Any) -> None:
        """The drain before a revoke or a stop, then a checkpoint of what the drained events wrote:
        the commit here often finds no offset to commit, and never reaches ``_commit_offsets``."""
        await super()._consumer_wait_empty(consumer, logger)
        await self.checkpoint()
