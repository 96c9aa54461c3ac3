"""What a domain decision asks the edge to send: typed values, one class per kind of message.

The type says what a value is; the edge (app/engine/routes.py) decides where it goes, the topic
and the registry contract of each type, so no rule names a topic. ``value`` holds the record in
JSON mode (decimals as strings, instants ISO-8601) and is validated against the contract at the
edge. A sales-order command's branch of the command union is its ``action``, not a ``"-type"``
key in the record (that is fastavro's notation, written at the edge).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

# the registry contracts of the service's own records (the catalog ties each to its topic)
SALES_ORDER = "io.crmerpsync.erp.commands.SalesOrderCommand"
CUSTOMER_COMMAND = "io.crmerpsync.erp.commands.CustomerCommand"
CRM_UPDATE = "io.crmerpsync.sync.CrmUpdateCommand"
EXCEPTION = "io.crmerpsync.sync.ExceptionRecord"
RESOLUTION = "io.crmerpsync.sync.ExceptionResolution"
AUDIT = "io.crmerpsync.sync.AuditRecord"
DRIFT_ALERT = "io.crmerpsync.sync.DriftAlert"
ESCALATION = "io.crmerpsync.sync.Escalation"
JSON = "json"  # an internal topic's JSON message, not a registry contract


@dataclass(frozen=True, slots=True)
class Output:
    """A message the domain decided on: its key, its record, and how the edge must send it."""

    key: str
    value: dict[str, Any]  # JSON-mode record of the type's contract
    headers: tuple[tuple[str, str], ...] = field(default=(), kw_only=True)  # Kafka headers (UTF-8 values)
    partition: int | None = field(default=None, kw_only=True)  # None: by key; set where a reader needs it


class OrderAction(StrEnum):
    """Which command a SalesOrderCommand carries (the contract's union branch, by record name)."""

    CREATE = "io.crmerpsync.erp.commands.CreateSalesOrder"
    AMEND = "io.crmerpsync.erp.commands.AmendSalesOrder"
    CANCEL = "io.crmerpsync.erp.commands.CancelSalesOrder"


@dataclass(frozen=True, slots=True)
class SalesOrderCommand(Output):
    """Create, amend or cancel the ERP's sales order of a deal (``value["command"]``: its body)."""

    action: OrderAction = field(kw_only=True)


@dataclass(frozen=True, slots=True)
class CustomerCommand(Output):
    """A customer command (upsert, deactivate, merge): the ERP's view of a CRM account."""


@dataclass(frozen=True, slots=True)
class CrmUpdate(Output):
    """The ERP-owned fields of a deal, for the CRM."""


@dataclass(frozen=True, slots=True)
class CrmAccountUpdate(Output):
    """The ERP customer link and credit state of an account, for the CRM."""


@dataclass(frozen=True, slots=True)
class RenewalRequest(Output):
    """Ask the CRM to create the renewal opportunity of a contract (once per contract and term)."""


@dataclass(frozen=True, slots=True)
class ResyncRequest(Output):
    """Ask for CRM records (or a whole entity) to be published again in full: a gap in the source."""


@dataclass(frozen=True, slots=True)
class RenewalNotice(Output):
    """A renewal opportunity's stage, for the deal it renews (through the deal topic): internal JSON."""


@dataclass(frozen=True, slots=True)
class ExceptionRaised(Output):
    """An exception record: what went wrong, its reason code, owner, SLA and context."""


@dataclass(frozen=True, slots=True)
class ExceptionResolved(Output):
    """An exception closed (by the service, or by an operator)."""


@dataclass(frozen=True, slots=True)
class AuditRecord(Output):
    """Who did what, when, to which subject. ``about``: the kind of message audited; the edge
    writes where that kind goes into the record's ``topic``."""

    about: type[Output] | None = field(default=None, kw_only=True)


@dataclass(frozen=True, slots=True)
class DriftAlert(Output):
    """A drift alert opened or resolved (per deal, or per currency window)."""


@dataclass(frozen=True, slots=True)
class AlertActionRecord(Output):
    """An operator's acknowledgement or resolution of a drift alert (``crm-erp-sync alerts``)."""


@dataclass(frozen=True, slots=True)
class Escalation(Output):
    """An open exception past its SLA, routed to a team."""


@dataclass(frozen=True, slots=True)
class ParityFact(Output):
    """A deal's contribution to aggregate parity (or its withdrawal), keyed by currency: internal JSON."""


@dataclass(frozen=True, slots=True)
class RowRelease(Output):
    """A retired deal's line for the CDC ingest to forget, in the partition that holds it: internal JSON."""


@dataclass(frozen=True, slots=True)
class Retry(Output):
    """``command`` sent again once retry tier ``tier``'s delay has passed, with the same id and
    record (``key``/``value`` are the command's; ``headers`` the tier's control headers)."""

    command: Output = field(kw_only=True)
    tier: str = field(kw_only=True)


def retry(command: Output, tier: str, headers: tuple[tuple[str, str], ...]) -> Retry:
    return Retry(command.key, command.value, headers=headers, command=command, tier=tier)
