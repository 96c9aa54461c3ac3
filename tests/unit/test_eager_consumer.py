"""The drain loop's eager hand-off (app/engine/consumer.py), checked against the pinned faust-streaming."""

from __future__ import annotations

import asyncio
import inspect

import pytest
from faust.transport import consumer as faust_consumer

from app.engine.consumer import Consumer
from app.engine.producer import App


def test_fausts_drain_loop_still_hands_each_message_over_through_wait_first():
    """What the workaround hooks; if this fails, faust changed and the workaround must be re-checked."""
    source = " ".join(inspect.getsource(faust_consumer.Consumer._drain_messages).split())
    assert "await self.wait_first( callback(message), self.suspend_flow.wait() )" in source


def _run(body):
    async def main():
        app = App("eager-consumer-test", autodiscover=False, store="memory://")
        consumer = app.consumer
        assert isinstance(consumer, Consumer)
        return await body(consumer)

    return asyncio.run(main())


def test_a_callback_that_needs_no_wait_is_done_in_place_without_a_task():
    async def body(consumer):
        tasks_before = len(asyncio.all_tasks())
        seen = []

        async def callback(message):
            seen.append((message, len(asyncio.all_tasks())))
            return "put"

        result = await consumer.wait_first(callback("m1"), consumer.suspend_flow.wait())
        return result, seen, tasks_before

    result, seen, tasks_before = _run(body)
    assert result.results == ["put"] and not result.stopped
    assert seen == [("m1", tasks_before)]  # ran in the caller's task: no task was made for it


def test_a_callback_that_has_to_wait_goes_on_and_its_result_comes_back():
    async def body(consumer):
        room = asyncio.Event()
        steps = []

        async def callback(message):
            steps.append("before")
            await room.wait()  # e.g. the stream's buffer is full
            steps.append("after")
            return message

        asyncio.get_running_loop().call_later(0.05, room.set)
        result = await consumer.wait_first(callback("m2"), consumer.suspend_flow.wait())
        return result, steps

    result, steps = _run(body)
    assert result.results == ["m2"] and not result.stopped
    assert steps == ["before", "after"]


def test_a_waiting_callback_loses_the_race_to_a_flow_suspension_and_is_cancelled():
    """As in stock faust: a rebalance suspends flow, and the drain loop must not stay stuck in a put."""

    async def body(consumer):
        cancelled = asyncio.Event()

        async def callback(message):
            try:
                await asyncio.Event().wait()  # never has room
            except asyncio.CancelledError:
                cancelled.set()
                raise

        asyncio.get_running_loop().call_later(0.05, consumer.suspend_flow.set)
        result = await consumer.wait_first(callback("m3"), consumer.suspend_flow.wait())
        await asyncio.wait_for(cancelled.wait(), 1)
        return result

    result = _run(body)
    assert result.results == [True]  # the suspend-flow event won


def test_an_error_in_the_callback_reaches_the_drain_loop_whether_it_waited_or_not():
    async def body(consumer):
        async def at_once(message):
            raise ValueError(message)

        async def later(message):
            await asyncio.sleep(0.01)
            raise ValueError(message)

        raised = []
        for callback in (at_once, later):
            with pytest.raises(ValueError) as info:
                await consumer.wait_first(callback(callback.__name__), consumer.suspend_flow.wait())
            raised.append(str(info.value))
        return raised

    assert _run(body) == ["at_once", "later"]


def test_while_flow_is_suspended_the_hand_off_is_modes_own():
    async def body(consumer):
        consumer.suspend_flow.set()

        async def callback(message):
            await asyncio.sleep(1)

        return await consumer.wait_first(callback("m4"), consumer.suspend_flow.wait())

    result = _run(body)
    assert result.results == [True]  # the suspension is seen at once, as stock faust would


def test_fausts_getmany_stops_handing_over_a_batch_once_the_flow_stops():
    """What the seek fix relies on: stopping the flow abandons the batch in hand."""
    source = " ".join(inspect.getsource(faust_consumer.Consumer.getmany).split())
    assert "for tp, record in records_it: if not self.flow_active: break" in source


@pytest.fixture
def seek_spy(monkeypatch):
    """Faust's own seek replaced by one that records whether messages could flow during it."""
    flow_during_seek = []

    async def perform_seek(self):
        flow_during_seek.append(self.flow_active)
        await asyncio.sleep(0)

    monkeypatch.setattr(faust_consumer.Consumer, "perform_seek", perform_seek)
    return flow_during_seek


@pytest.mark.parametrize("flowing", [True, False], ids=["flowing: stopped, then resumed", "stopped: left stopped"])
def test_no_message_flows_during_a_seek_and_the_flow_after_it_is_as_before(seek_spy, flowing):
    async def body(consumer):
        consumer.resume_flow() if flowing else consumer.stop_flow()
        await consumer.perform_seek()
        return consumer.flow_active

    assert _run(body) is flowing
    assert seek_spy == [False]


def test_a_rebalance_that_stops_the_flow_during_a_seek_keeps_it_stopped(monkeypatch):
    async def perform_seek(self):
        await asyncio.sleep(0)
        self.stop_flow()  # partitions revoked meanwhile: the rebalance resumes the flow when it is done

    monkeypatch.setattr(faust_consumer.Consumer, "perform_seek", perform_seek)

    async def body(consumer):
        consumer.resume_flow()
        await consumer.perform_seek()
        return consumer.flow_active

    assert _run(body) is False
