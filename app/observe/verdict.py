"""A worker's standing answer to "what is wrong with X?", asked again at most every few seconds.

Missing catalog topics and unreadable source schemas are judged the same way: the question runs in a
thread (it asks the broker or the registry), its answer feeds a gauge and ``/ready``, a new non-empty
answer is logged once as an error and its clearing once as information, and when the question
cannot be asked at all the last answer stands (an outage is the probes' to report).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import Gauge


@dataclass
class Verdict:
    log: logging.Logger
    gauge: Gauge
    problem: str  # the error line, %s: the answer's lines joined
    cleared: str  # the information line once the answer is empty again
    unasked: str  # the warning line when the question fails, %s: the error
    joiner: str = ", "
    answer: list[str] = field(default_factory=list)
    checked: float = 0.0

    async def current(self, ask: Callable[[], list[str]], max_age_s: float) -> list[str]:
        """The answer, asked again through ``ask`` (in a thread) when older than ``max_age_s``."""
        if time.monotonic() - self.checked > max_age_s:
            try:
                answer = await asyncio.to_thread(ask)
            except Exception as exc:
                self.log.warning(self.unasked, exc)
            else:
                if answer and answer != self.answer:
                    self.log.error(self.problem, self.joiner.join(answer))
                elif self.answer and not answer:
                    self.log.info(self.cleared)
                self.answer = answer
                self.gauge.set(len(answer))
            self.checked = time.monotonic()
        return self.answer
