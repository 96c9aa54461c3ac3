"""Partitions held because a quarantine cannot be written at all: the one place a stream stops on purpose.

The guard registers the source coordinates it waits on, with the broker's refusal; ``/ready`` names
them and ``crm_erp_sync_quarantine_blocked`` counts them, so a stop is never silent.
"""

from __future__ import annotations

from app.observe import metrics

_held: dict[str, str] = {}


def hold(coordinates: str, why: str) -> None:
    _held[coordinates] = why[:300]
    metrics.quarantine_blocked.set(len(_held))


def release(coordinates: str) -> None:
    if _held.pop(coordinates, None) is not None:
        metrics.quarantine_blocked.set(len(_held))


def held() -> dict[str, str]:
    return dict(_held)
