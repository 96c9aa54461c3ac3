"""Where each kind of domain output goes: its catalog topic, its contract, its record on the wire.

The domain says what a message is (its type, app/domain/outputs.py); this is the one place that
says where it goes. The contract comes from the topic catalog (``value_contract``; none means
the topic carries internal JSON), so a type, its topic and its contract cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.catalog import spec
from app.domain.outputs import (
    JSON,
    AlertActionRecord,
    AuditRecord,
    CrmAccountUpdate,
    CrmUpdate,
    CustomerCommand,
    DriftAlert,
    Escalation,
    ExceptionRaised,
    ExceptionResolved,
    Output,
    ParityFact,
    RenewalNotice,
    RenewalRequest,
    ResyncRequest,
    Retry,
    RowRelease,
    SalesOrderCommand,
)

TOPICS: dict[type[Output], str] = {
    SalesOrderCommand: "erp.commands.sales-order",
    CustomerCommand: "erp.commands.customer",
    CrmUpdate: "crm.commands.update",
    CrmAccountUpdate: "crm.commands.account-update",
    RenewalRequest: "crm.commands.renewal",
    ResyncRequest: "crm.commands.resync",
    RenewalNotice: "sync.deal-changes",
    ExceptionRaised: "sync.exceptions",
    ExceptionResolved: "sync.exception-resolutions",
    AuditRecord: "sync.audit",
    DriftAlert: "sync.drift-alerts",
    AlertActionRecord: "sync.alert-actions",
    Escalation: "sync.escalations",
    ParityFact: "sync.parity-facts",
    RowRelease: "sync.row-index",
}


@dataclass(frozen=True, slots=True)
class Route:
    topic: str  # catalog name (without the deployment's prefix)
    contract: str  # registry contract of the value, or JSON


def route(out: Output) -> Route:
    """The topic and contract of ``out``; a retry goes through its tier's topic with its command's contract."""
    if isinstance(out, Retry):
        return Route(f"sync.retry.{out.tier}", route(out.command).contract)
    topic = TOPICS[type(out)]
    return Route(topic, spec(topic).value_contract or JSON)


def record(out: Output) -> dict[str, Any]:
    """The JSON-mode record to validate and encode: a command's union branch named the way fastavro
    reads it, an audit's ``topic`` filled with where the kind it is about goes."""
    if isinstance(out, Retry):
        return record(out.command)
    if isinstance(out, SalesOrderCommand):
        return {**out.value, "command": {"-type": str(out.action), **out.value["command"]}}
    if isinstance(out, AuditRecord) and out.about is not None:
        return {**out.value, "topic": TOPICS[out.about]}
    return out.value


def headers(out: Output) -> tuple[tuple[str, str], ...]:
    """``out``'s headers; a retry also names the topic its command returns to."""
    if isinstance(out, Retry):
        return (*out.headers, ("x-retry-target-catalog", TOPICS[type(out.command)]))
    return out.headers
