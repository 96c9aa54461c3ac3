"""What a worker's log says about its table recovery after a rebalance: how many changelog records it
had to read, and how long it took. Faust logs both tables (``Highwater - Active`` and ``Reading
Starts At - Active``) at every recovery; the worker logs JSON lines with a timestamp."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime

ROW = re.compile(r"^\|\s*(\S+)\s*\|\s*(\d+)\s*\|\s*(-?\d+)\s*\|$")


def _offsets(message: str) -> dict[tuple[str, int], int]:
    """The ``| topic | partition | offset |`` rows of one of Faust's log tables (〃 repeats the topic)."""
    found: dict[tuple[str, int], int] = {}
    topic = ""
    for line in message.splitlines():
        m = ROW.match(line.strip())
        if m:
            topic = topic if m.group(1) == "〃" else m.group(1)
            found[(topic, int(m.group(2)))] = int(m.group(3))
    return found


@dataclass(frozen=True)
class Recovery:
    """The first recovery logged after a point: changelog records to read, and seconds from the
    assignment to ``Worker ready``."""

    records: int
    seconds: float


def _ts(line: dict) -> datetime:
    return datetime.strptime(line["ts"], "%Y-%m-%d %H:%M:%S,%f")


def first_recovery(log_lines: list[str]) -> Recovery | None:
    """The first complete recovery in ``log_lines`` (JSON lines), or None while it is not complete."""
    assigned_at = highwaters = starts = None
    for raw in log_lines:
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        message = line.get("message", "")
        if assigned_at is None:
            if "Setting newly assigned partitions" in message:
                assigned_at = _ts(line)
            continue
        if "Highwater for active changelog partitions" in message:
            highwaters = _offsets(message)
        elif "active offsets at start of reading" in message:
            starts = _offsets(message)
        elif "Worker ready" in message and highwaters is not None and starts is not None:
            records = sum(max(0, high - starts.get(tp, -1)) for tp, high in highwaters.items())
            return Recovery(records, (_ts(line) - assigned_at).total_seconds())
    return None
