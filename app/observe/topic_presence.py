"""Do the catalog's topics exist on the broker? Checked at start and every few seconds; feeds a
gauge, ``/ready`` and one log line per change.

A send to a missing topic waits 30 s for its metadata and then fails (``UNKNOWN_TOPIC_OR_PART``);
saying which topics are missing, at start, turns that into an instruction: run ``topics apply``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from app.catalog import default_catalog
from app.client_config import admin_client
from app.observe import metrics
from app.settings import get_settings

log = logging.getLogger(__name__)
LIST_TIMEOUT_S = 10

_state: dict[str, Any] = {"missing": [], "checked": 0.0, "admin": None}


def _present() -> set[str]:
    if _state["admin"] is None:
        _state["admin"] = admin_client(get_settings())
    return set(_state["admin"].list_topics(timeout=LIST_TIMEOUT_S).topics)


async def missing_topics(max_age_s: float = 10.0) -> list[str]:
    """Catalog topics (full names) the broker does not have. When the broker cannot be asked, the
    last answer stands: an outage is reported by the consumer and the producer, not here."""
    if time.monotonic() - _state["checked"] > max_age_s:
        s = get_settings()
        try:
            present = await asyncio.to_thread(_present)
        except Exception as exc:
            log.warning("could not list the broker's topics (%s); keeping the last answer", exc)
        else:
            missing = sorted({s.topic(t.name) for t in default_catalog()} - present)
            if missing and missing != _state["missing"]:
                log.error(
                    "catalog topics missing on the broker (sends to them fail after 30 s): %s; "
                    "run `crm-erp-sync topics apply`",
                    ", ".join(missing),
                )
            elif _state["missing"] and not missing:
                log.info("every catalog topic exists on the broker now")
            _state["missing"] = missing
            metrics.missing_topics.set(len(missing))
        _state["checked"] = time.monotonic()
    return _state["missing"]
