"""The worker's verdict on its CDC sources: unreadable writer schemas, checked at start and every few seconds.

Feeds ``/ready``, ``/ops``, a gauge and one log line per change (see app/serde/source_schemas.py).
"""

from __future__ import annotations

import logging

from app.catalog import default_catalog
from app.observe import metrics
from app.observe.verdict import Verdict
from app.serde.source_schemas import SourceChecker
from app.settings import get_settings

log = logging.getLogger(__name__)


_checker: list[SourceChecker] = []  # made on first use: the settings are read then
verdict = Verdict(
    log,
    metrics.unreadable_source_schemas,
    problem="CDC writer schemas the mappings cannot read (their rows are quarantined as SCHEMA_MISMATCH): %s",
    cleared="every CDC writer schema is readable now",
    unasked="could not check the CDC source schemas (%s); keeping the last answer",
    joiner=" | ",
)


def _unreadable() -> list[str]:
    if not _checker:
        _checker.append(SourceChecker(get_settings()))
    bad = [v for source in _checker[0].check(default_catalog()) for v in source.unreadable]
    return [f"{v.subject} v{v.version} (id {v.schema_id}): {'; '.join(v.problems)}" for v in bad]


async def unreadable_sources(max_age_s: float = 10.0) -> list[str]:
    """The worker's view: one line per unreadable source schema version, checked at most every
    ``max_age_s``. When the registry cannot be asked, the last answer stands (an outage is the
    registry probe's to report)."""
    return await verdict.current(_unreadable, max_age_s)
