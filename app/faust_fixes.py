"""One workaround for faust-streaming 0.15.x, applied when the app is created.

The stream loop skips a message fetched before a rebalance (its generation id is stale, or flow
control is suspended) and *acks* it (``faust/streams.py``, the ``skipped_value`` branch and the
``finally`` that acks skipped values). An acked offset is committed, so the partition's next owner
starts after it and the message is never processed: measured here as two closed-won deals without
an order in 20 000 when a second worker joined mid-stream.

The fix refuses to count such acks: the message is marked acked (so nothing waits for it) but its
offset is not added to the commit bookkeeping. After the rebalance Faust seeks to the committed
offset and the message is read again — a redelivery, which the service's idempotency absorbs.
"""

from __future__ import annotations

import faust
from faust.transport import consumer as faust_consumer
from mode.utils.futures import notify

PINNED = "0.15."
_original_ack = faust_consumer.Consumer.ack


def _ack_unless_stale(self: faust_consumer.Consumer, message) -> bool:
    stale = message.generation_id != self.app.consumer_generation_id or not self.app.flow_control.is_active()
    if not stale:
        return _original_ack(self, message)
    with faust_consumer.ack_lock:
        if not message.acked:
            message.acked = True
            self._unacked_messages.discard(message)
            notify(self._waiting_for_ack)
    return False


def apply() -> None:
    if not faust.__version__.startswith(PINNED):
        raise RuntimeError(f"app/faust_fixes.py was written for faust-streaming {PINNED}x, not {faust.__version__}")
    faust_consumer.Consumer.ack = _ack_unless_stale
