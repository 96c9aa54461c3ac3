"""``crm-erp-sync reconcile``: the deals table's changelog read to its end, then the pure report.

The changelog is read directly (partitions assigned, never subscribed; nothing committed), so the
report needs no running worker and never joins or disturbs the worker's consumer group. It reads
up to the high watermarks captured at the start: a consistent-enough snapshot while the worker
keeps writing. Compaction may not have run yet, so the last value per key wins and a null value
(Faust's delete) removes the key.
"""

from __future__ import annotations

from pydantic import ValidationError

from app.domain.orders.deal import DealState
from app.engine.reader import TIMEOUT_S, Snapshot, last_values
from app.flows.step import rows
from app.readmodels.reconcile import Report, reconcile
from app.settings import Settings


def changelog_topic(s: Settings) -> str:
    return f"{s.app_id}-deals-changelog"


def read_changelog(s: Settings, timeout_s: float = TIMEOUT_S, topic: str | None = None) -> dict[bytes, bytes]:
    """The last non-null value of every key in a table changelog (default: deals), up to its current
    end; the engine's outbox rows are not the table's data and are left out. ReadError when it cannot
    be read, MissingTopicError when the worker has never run here."""
    with Snapshot(s, "reconcile", timeout_s) as snapshot:
        missing = "the worker has never run against this cluster with this CRM_ERP_APP_ID"
        return dict(rows(last_values(snapshot, topic or changelog_topic(s), missing).items()))


def parse(values: dict[bytes, bytes]) -> tuple[list[DealState], int]:
    """The deal states, and how many values did not parse as one."""
    states: list[DealState] = []
    bad = 0
    for raw in values.values():
        try:
            states.append(DealState.model_validate_json(raw))
        except ValidationError:
            bad += 1
    return states, bad


def run(s: Settings, since_ms: int | None = None, until_ms: int | None = None) -> Report:
    states, bad = parse(read_changelog(s))
    report = reconcile(states, since_ms, until_ms)
    report.unreadable = bad
    return report
