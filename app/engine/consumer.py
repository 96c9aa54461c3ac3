"""Faust's consumer with a cheap per-message hand-off: the drain loop's ``wait_first`` run eagerly.

Why: faust-streaming 0.15's ``Consumer._drain_messages`` awaits, for every message,
``self.wait_first(callback(message), self.suspend_flow.wait())``. mode's ``wait_first`` wraps each
argument, the service's stopped event and its crashed event in a task of its own and awaits
``asyncio.wait`` on the four: four tasks and several loop iterations per message, though the
callback (the conductor putting the event in its streams' queues) almost never has to wait.

Here the callback's coroutine is stepped once in place. When it finishes in that step, as it does
whenever the stream queues have room and flow is not suspended, that is the result and no task is
made. When it has to wait, the half-run coroutine goes on inside a task and the race against the
suspend-flow event is mode's, exactly as before. Any other ``wait_first`` call is mode's own.
Python 3.12's eager task factory does the same for every task; this service runs on 3.11.

The same class makes Faust's seek back to the committed offsets safe while messages flow. After a
rebalance that needs no table recovery, faust-streaming 0.15 resumes the flow *before* it resumes
the stream partitions and seeks them. The drain loop can then be half-way through a batch fetched
before the seek: it goes on handing that batch over after the seek has set the read offset back,
moves the read offset past the re-fetched messages, and drops them as already read. Never acked,
they hold the committed offset for good, and their deals wait until the worker restarts. Seen when
a second worker joins a backlog: one of four runs of 10 000 deals, and the benchmark's two-worker
run, stalled with about 200-300 deals short. Here the flow is stopped for the length of the seek,
so the batch in hand is abandoned (the drain loop stops at its next message) and the next batch is
fetched from the new position. What was handed over before the seek is handed over again after it,
which the agents treat as a redelivery.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Coroutine, Generator
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from mode.services import WaitResults


class Consumer(faust_aiokafka.Consumer):
    """aiokafka's consumer whose drain loop hands each message over without spawning tasks, and
    whose seeks are not overtaken by messages fetched before them."""

    _flow_stops = 0

    def stop_flow(self) -> None:
        self._flow_stops += 1
        super().stop_flow()

    async def perform_seek(self) -> None:
        if not self.flow_active:
            await super().perform_seek()
            return
        self.stop_flow()
        stops = self._flow_stops
        try:
            await super().perform_seek()
        finally:
            if self._flow_stops == stops:  # a rebalance that stopped the flow meanwhile resumes it itself
                self.resume_flow()

    async def _commit_offsets(self, offsets: Any, start_new_transaction: bool = True) -> bool:
        """The table rows of the events being committed are written first (app/engine/checkpoint.py):
        the offsets are computed by now, so every event they cover has written its rows."""
        checkpoint = getattr(self.app, "checkpoint", None)
        if checkpoint is not None:
            await checkpoint()
        return await super()._commit_offsets(offsets, start_new_transaction=start_new_transaction)

    async def wait_first(self, *coros: Any, timeout: Any = None) -> WaitResults:
        if timeout is not None or len(coros) != 2 or not all(asyncio.iscoroutine(c) for c in coros):
            return await super().wait_first(*coros, timeout=timeout)
        first, flow = coros
        if self.suspend_flow.is_set() or self.should_stop:
            return await super().wait_first(first, flow)
        try:
            yielded = first.send(None)
        except StopIteration as done:
            flow.close()
            return WaitResults([first], [done.value], False)
        except BaseException:
            flow.close()
            raise
        return await super().wait_first(_go_on(first, yielded), flow)


async def _go_on(coro: Coroutine, yielded: Any) -> Any:
    return await _resume(coro, yielded)  # a native coroutine: mode's wait_first wants an Awaitable


@types.coroutine
def _resume(coro: Coroutine, yielded: Any) -> Generator[Any, Any, Any]:
    """Go on with a coroutine that has already been stepped once and yielded ``yielded``."""
    while True:
        try:
            sent = yield yielded
        except BaseException as exc:  # cancellation or a thrown error goes into the coroutine
            try:
                yielded = coro.throw(exc)
            except StopIteration as done:
                return done.value
        else:
            try:
                yielded = coro.send(sent)
            except StopIteration as done:
                return done.value
