"""The timer both ledgers share: due SLAs (a table of key -> epoch ms) turned into check messages.

The ledger tables are written only from their streams, so the timer never touches them: it sends a
``{"check": true}`` message for each key whose time has come, once per due time, and the ledger's
agent decides (escalate, or forget a resolved row after its retention).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

log = logging.getLogger(__name__)


def register(app: Any, due_table: Any, ledger_topic: Any, interval: float, name: str) -> None:
    """A timer on ``app`` checking ``due_table`` every ``interval`` seconds into ``ledger_topic``."""
    asked: dict[bytes, bytes] = {}  # due time already turned into a check (kept while it is due)

    async def check() -> None:
        if app.rebalancing:
            return
        try:
            now_ms = time.time() * 1000
            due = {k: v for k, v in list(due_table.items()) if int(v) <= now_ms}
            for key in [k for k, v in asked.items() if due.get(k) != v]:
                del asked[key]  # moved or removed by the agent
            for key, value in due.items():
                if asked.get(key) != value:
                    await ledger_topic.send(key=key, value=orjson.dumps({"check": True}))
                    asked[key] = value
        except Exception:  # never raises: it would kill the worker
            log.exception("%s: checking due SLAs failed; will try again", name)

    check.__name__ = check.__qualname__ = name  # the timer's name in Faust's sensors and logs
    app.timer(interval=interval)(check)
