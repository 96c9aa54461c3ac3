"""Fail-points: named places in the engine where a test can make the worker die with ``kill -9``.

Why: the engine's promise is that a crash anywhere between reading an input and committing it
loses no output and invents none. A crash at a random moment rarely lands in the narrow windows
that matter; a fail-point lands there every time (the technique of TiKV's fail-rs). They are armed
only by ``CRM_ERP_FAILPOINTS`` (tests); unarmed, ``reached`` is a set lookup and nothing else.

Syntax: ``<flow>.<point>[:<topic>][@<n>]``, comma-separated. ``deals.after_state:erp.commands.sales-order@2``
kills the worker the second time the deal flow has written the state of a step that sends to
``erp.commands.sales-order``. Points: ``after_state`` (state and outbox written, nothing sent) and
``after_send`` (outputs on the broker, input not committed).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Iterable
from dataclasses import dataclass

log = logging.getLogger(__name__)

POINTS = ("after_state", "after_send")


@dataclass(slots=True)
class FailPoint:
    name: str  # <flow>.<point>
    topic: str | None  # fire only at a step that sends to this catalog topic
    nth: int  # fire at the nth matching step
    hits: int = 0


def parse(spec: str) -> dict[str, list[FailPoint]]:
    """Armed fail-points by ``<flow>.<point>``; a malformed entry is an error at start, not a silent no-op."""
    armed: dict[str, list[FailPoint]] = {}
    for entry in filter(None, (e.strip() for e in spec.split(","))):
        rest, _, nth = entry.partition("@")
        name, _, topic = rest.partition(":")
        flow, _, point = name.partition(".")
        if not flow or point not in POINTS or (nth and not nth.isdigit()) or nth == "0":
            raise ValueError(f"CRM_ERP_FAILPOINTS: {entry!r} is not <flow>.<{'|'.join(POINTS)}>[:<topic>][@<n>]")
        armed.setdefault(name, []).append(FailPoint(name, topic or None, int(nth or 1)))
    return armed


class FailPoints:
    def __init__(self, spec: str) -> None:
        self._armed = parse(spec)

    def __bool__(self) -> bool:
        return bool(self._armed)

    def due(self, name: str, topics: Iterable[str]) -> bool:
        """Count a pass through ``name`` (a step sending to ``topics``); True when a fail-point fires here."""
        points = self._armed.get(name)
        if not points:
            return False
        sent = list(topics)  # full names: a topic prefix goes before the catalog name
        for p in points:
            if p.topic is None or any(t.endswith(p.topic) for t in sent):
                p.hits += 1
                if p.hits == p.nth:
                    return True
        return False


def die(name: str) -> None:
    """The crash: no cleanup, no flush, no commit (what ``kill -9`` does)."""
    log.critical("fail-point %s reached: killing the worker", name)
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)
