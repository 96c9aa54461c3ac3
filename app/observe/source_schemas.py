"""The worker's verdict on its CDC sources: unreadable writer schemas, checked at start and every few seconds.

Feeds ``/ready``, ``/ops``, a gauge and one log line per change (see app/serde/source_schemas.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from app.catalog import default_catalog
from app.observe import metrics
from app.serde.source_schemas import SourceChecker
from app.settings import get_settings

log = logging.getLogger(__name__)


_worker: dict[str, Any] = {"checker": None, "unreadable": [], "checked": 0.0}


async def unreadable_sources(max_age_s: float = 10.0) -> list[str]:
    """The worker's view: one line per unreadable source schema version, checked at most every
    ``max_age_s``. When the registry cannot be asked, the last answer stands (an outage is the
    registry probe's to report)."""
    if time.monotonic() - _worker["checked"] > max_age_s:
        s = get_settings()
        if _worker["checker"] is None:
            _worker["checker"] = SourceChecker(s)
        try:
            verdicts = await asyncio.to_thread(_worker["checker"].check, default_catalog())
        except Exception as exc:
            log.warning("could not check the CDC source schemas (%s); keeping the last answer", exc)
        else:
            bad = [v for verdict in verdicts for v in verdict.unreadable]
            lines = [f"{v.subject} v{v.version} (id {v.schema_id}): {'; '.join(v.problems)}" for v in bad]
            if lines and lines != _worker["unreadable"]:
                log.error(
                    "CDC writer schemas the mappings cannot read (their rows are quarantined as SCHEMA_MISMATCH): %s",
                    " | ".join(lines),
                )
            elif _worker["unreadable"] and not lines:
                log.info("every CDC writer schema is readable now")
            _worker["unreadable"] = lines
            metrics.unreadable_source_schemas.set(len(lines))
        _worker["checked"] = time.monotonic()
    return _worker["unreadable"]
