"""The librdkafka producer's direct path when it has no librdkafka handle (the broker is never reached)."""

from __future__ import annotations

import asyncio

import pytest
from faust.exceptions import NotReady

from app.engine.producer import App, Producer


def test_a_direct_send_before_start_fails_as_a_faust_send_does_not_on_a_missing_handle() -> None:
    """Before start (and after stop) ``produce`` takes ``send``'s path, whose error says why."""
    producer = App("t-not-started", broker="kafka://127.0.0.1:1").producer
    assert isinstance(producer, Producer)

    async def main() -> None:
        with pytest.raises(NotReady, match="not yet started"):
            await producer.produce("t.topic", b"k", b"v", None)

    asyncio.run(main())
