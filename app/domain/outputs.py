"""What a domain decision asks the edge to send: topic, key, contract and JSON-mode value."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SALES_ORDER = "io.crmerpsync.erp.commands.SalesOrderCommand"
CRM_UPDATE = "io.crmerpsync.sync.CrmUpdateCommand"
EXCEPTION = "io.crmerpsync.sync.ExceptionRecord"
RESOLUTION = "io.crmerpsync.sync.ExceptionResolution"
AUDIT = "io.crmerpsync.sync.AuditRecord"
DRIFT_ALERT = "io.crmerpsync.sync.DriftAlert"
ESCALATION = "io.crmerpsync.sync.Escalation"
JSON = "json"  # an internal topic's JSON message, not a registry contract


@dataclass(frozen=True, slots=True)
class Output:
    topic: str  # catalog name
    key: str
    contract: str
    value: dict[str, Any]  # JSON-mode values; the agent validates them into the contract's model
    headers: tuple[tuple[str, str], ...] = ()  # Kafka headers (UTF-8 values), e.g. a retry tier's
    partition: int | None = None  # None: by key; set where the reader must get it in a given partition
