"""The rebalance fix in app.engine.stream_topic, checked against the pinned faust-streaming."""

from __future__ import annotations

import asyncio

import faust
from faust.events import Event
from faust.types import Message

from app.engine.app import build_app
from app.engine.stream_topic import StreamTopic
from app.settings import get_settings

app = build_app(get_settings())  # the service's app as the worker configures it (not started)


def _buffer(topic):
    return topic.clone(is_iterator=True).queue


def test_stock_faust_empties_agent_buffers_on_every_resume():
    """The behaviour the fix exists for; if this fails, faust changed and the fix may go."""
    stock = faust.App("stream-topic-stock", autodiscover=False)
    buffered = _buffer(stock.topic("t"))
    stock.flow_control.resume()  # flow is active now: a further resume is no transition
    buffered.put_nowait("event")
    stock.flow_control.resume()
    assert buffered.qsize() == 0


def test_service_topics_keep_buffered_events_across_resume():
    topic = app.topic("some-input")
    assert isinstance(topic, StreamTopic)
    buffered = _buffer(topic)
    buffered.put_nowait("event")
    app.flow_control.resume()
    app.flow_control.resume()
    assert buffered.get_nowait() == "event"


def test_an_event_left_over_from_an_older_generation_is_skipped_and_never_acked():
    """What makes keeping the buffer safe: the stream drops stale events without acking them."""
    assert faust.streams._CStreamIterator is not None  # the pure-Python iterator acks skipped events

    async def first_delivered() -> tuple[list[int], Message, dict]:
        a = faust.App("stream-topic-skip", autodiscover=False, Topic=StreamTopic, store="memory://")
        a.flow_control.resume()
        a.consumer_generation_id = 2
        channel = a.topic("t", key_serializer="raw", value_serializer="raw").clone(is_iterator=True)
        events = [
            Event(a, b"k", b"v", {}, Message("t", 0, offset, 0.0, 0, {}, b"k", b"v", None, generation_id=gen))
            for offset, gen in ((1, 1), (2, 2))
        ]
        for event in events:
            channel.queue.put_nowait(event)
        async for event in a.stream(channel).events():
            return [event.message.offset], events[0].message, dict(a.consumer._acked)

    delivered, stale, acked = asyncio.run(first_delivered())
    assert delivered == [2]
    assert not stale.acked and not any(acked.values())
