"""The envelope every command carries: idempotency key, correlation, causation, lineage, version."""

from __future__ import annotations

import datetime as dt
from typing import Any

from app.domain.changes import Lineage

CONTRACT_VERSION = "1"
SERVICE_ACTOR = "crm-erp-sync"


def command_envelope(
    command_id: str,
    correlation_id: str,
    causation_ids: list[str],
    lineage: Lineage,
    source_position: str | None,
    now: dt.datetime,
) -> dict[str, Any]:
    """An ``io.crmerpsync.sync.CommandEnvelope`` (JSON-mode values)."""
    return {
        "command_id": command_id,
        "correlation_id": correlation_id,
        "causation_ids": causation_ids,
        "lineage": lineage.record(source_position),
        "issued_at": now.isoformat(),
        "contract_version": CONTRACT_VERSION,
        "issued_by": SERVICE_ACTOR,
    }
