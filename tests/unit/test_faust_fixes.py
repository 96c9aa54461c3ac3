"""The faust-streaming workaround against the pinned version: stale acks never reach a commit."""

from __future__ import annotations

from faust.types import TP, Message

from app.faust_app import app


def message(offset: int, generation: int) -> Message:
    return Message(
        topic="t",
        partition=0,
        offset=offset,
        timestamp=0.0,
        timestamp_type=0,
        headers=[],
        key=b"k",
        value=b"v",
        checksum=None,
        generation_id=generation,
    )


def test_a_message_fetched_before_a_rebalance_is_not_counted_as_acked():
    consumer = app.consumer
    app.topics._acking_topics.add("t")
    app.flow_control.resume()  # flowing, as between rebalances
    current = app.consumer_generation_id
    stale, fresh = message(7, current - 1), message(8, current)

    assert consumer.ack(stale) is False and stale.acked
    assert consumer.ack(fresh) is True
    assert 7 not in consumer._acked_index[TP("t", 0)] and 8 in consumer._acked_index[TP("t", 0)]


def test_acks_while_flow_is_suspended_are_not_counted():
    consumer = app.consumer
    app.topics._acking_topics.add("t")
    app.flow_control.suspend()
    try:
        msg = message(9, app.consumer_generation_id)
        assert consumer.ack(msg) is False and msg.acked
        assert 9 not in consumer._acked_index[TP("t", 0)]
    finally:
        app.flow_control.resume()
