"""A partition with work waiting and no progress is stuck: said on ``/ready``, by a gauge and an alert.

A worker restarted after ``kill -9`` has been seen to join, recover, report ready, and then process
nothing. Whatever the cause, such a stop must never be silent. The live timer feeds every assigned
input partition's committed offset and end offset here every few seconds; a partition whose lag is
positive while its committed offset has not moved for ``after_s`` seconds (a retry tier: its delay
on top) is stuck until it moves again. Pure: no Faust, no Kafka.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class StallWatch:
    after_s: float
    grace_s: dict[str, float] = field(default_factory=dict)  # topic → extra wait (a retry tier's delay)
    _since: dict[tuple[str, int], tuple[int, float]] = field(default_factory=dict)  # tp → (committed, since)

    def observe(self, now_s: float, offsets: dict[tuple[str, int], tuple[int, int]]) -> list[str]:
        """``offsets``: (topic, partition) → (committed, end). Returns the stuck partitions, as
        ``topic/partition: lag N, no progress for S s``, sorted."""
        stuck = []
        seen = {}
        for tp, (committed, end) in offsets.items():
            last = self._since.get(tp)
            since = last[1] if last is not None and last[0] == committed else now_s
            seen[tp] = (committed, since)
            waited = now_s - since
            if end > committed and waited >= self.after_s + self.grace_s.get(tp[0], 0.0):
                stuck.append(f"{tp[0]}/{tp[1]}: lag {end - committed}, no progress for {waited:.0f} s")
        self._since = seen  # partitions no longer assigned are forgotten
        return sorted(stuck)


_stuck: list[str] = []  # what the worker's last lag refresh found stuck


def report(stuck: list[str]) -> bool:
    """Record the worker's latest finding; True when it changed (the caller logs it)."""
    changed = stuck != _stuck
    _stuck[:] = stuck
    return changed


def stuck() -> list[str]:
    return list(_stuck)
