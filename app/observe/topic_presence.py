"""Do the catalog's topics exist on the broker? Checked at start and every few seconds; feeds a
gauge, ``/ready`` and one log line per change. And are they replicated as the topic profile asks?
Checked once, when the worker starts (``app.engine.worker``).

A send to a missing topic waits 30 s for its metadata and then fails (``UNKNOWN_TOPIC_OR_PART``);
saying which topics are missing, at start, turns that into an instruction: run ``topics apply``.
"""

from __future__ import annotations

import logging
from typing import Any

from app.catalog import TopicSpec, default_catalog
from app.client_config import admin_client
from app.observe import metrics
from app.observe.verdict import Verdict
from app.settings import Settings, get_settings

log = logging.getLogger(__name__)
LIST_TIMEOUT_S = 10

_state: dict[str, Any] = {"admin": None}
verdict = Verdict(
    log,
    metrics.missing_topics,
    problem="catalog topics missing on the broker (sends to them fail after 30 s): %s; run `crm-erp-sync topics apply`",
    cleared="every catalog topic exists on the broker now",
    unasked="could not list the broker's topics (%s); keeping the last answer",
)


def _missing() -> list[str]:
    if _state["admin"] is None:
        _state["admin"] = admin_client(get_settings())
    present = set(_state["admin"].list_topics(timeout=LIST_TIMEOUT_S).topics)
    s = get_settings()
    return sorted({s.topic(t.name) for t in default_catalog()} - present)


async def missing_topics(max_age_s: float = 10.0) -> list[str]:
    """Catalog topics (full names) the broker does not have. When the broker cannot be asked, the
    last answer stands: an outage is reported by the consumer and the producer, not here."""
    return await verdict.current(_missing, max_age_s)


def under_replicated(s: Settings, specs: list[TopicSpec] | tuple[TopicSpec, ...]) -> list[str]:
    """Service-owned catalog topics on the cluster with fewer replicas than ``specs`` ask for
    (``"<topic>: n of m"``); a topic not there yet is ``topics apply``'s to create, not this check's."""
    meta = admin_client(s).list_topics(timeout=LIST_TIMEOUT_S).topics
    low = []
    for spec in specs:
        name = s.topic(spec.name)
        if spec.owned_by == "producer" or name not in meta or not meta[name].partitions:
            continue
        replicas = min(len(p.replicas) for p in meta[name].partitions.values())
        if replicas < spec.replication:
            low.append(f"{name}: {replicas} of {spec.replication}")
    return low
