"""The customer link loop: what the ERP says about a customer → the link the service keeps, and the
CRM told.

The ERP answers a customer command with a customer event (created, updated, deactivated, merged)
carrying its customer number and credit state. The link is the ERP's side of the account: its
customer number, status, credit limit and hold. Each newer event replaces it; an event no newer
than the link held (the same event id, or an earlier ERP time) is a duplicate or a straggler and
changes nothing. When what the CRM shows changes (number, status, credit), a
``CrmAccountUpdate`` writes it back onto the account, as ERP-owned fields. Deals waiting for the
account's link (``CUSTOMER_NOT_LINKED``) read the link through the reference data, so they resume
without waiting for that write-back to come round through CDC.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from app.domain.audit import command_audit
from app.domain.changes import Lineage
from app.domain.envelope import command_envelope
from app.domain.outputs import CrmAccountUpdate, Output


class CustomerEventKind(StrEnum):
    """io.crmerpsync.erp.events.CustomerEventKind."""

    CREATED = "CREATED"
    UPDATED = "UPDATED"
    DEACTIVATED = "DEACTIVATED"
    MERGED = "MERGED"
    UNKNOWN = "UNKNOWN"


class CustomerStatus(StrEnum):
    ACTIVE = "ACTIVE"
    DEACTIVATED = "DEACTIVATED"
    MERGED = "MERGED"


_STATUS = {
    CustomerEventKind.CREATED: CustomerStatus.ACTIVE,
    CustomerEventKind.UPDATED: CustomerStatus.ACTIVE,
    CustomerEventKind.DEACTIVATED: CustomerStatus.DEACTIVATED,
    CustomerEventKind.MERGED: CustomerStatus.MERGED,
}


class CustomerEvent(BaseModel):
    """One ERP customer event, as the edge decoded it."""

    model_config = ConfigDict(frozen=True)

    event_id: str
    account_id: str
    command_id: str | None = None
    kind: CustomerEventKind
    customer_number: str
    credit_limit: Decimal | None = None
    currency: str | None = None
    credit_hold: bool = False
    payment_terms: str | None = None
    merged_into_customer_number: str | None = None
    occurred_at_ms: int


class CustomerLink(BaseModel):
    """The ERP's side of a CRM account, as its latest customer event gave it."""

    model_config = ConfigDict(frozen=True)

    account_id: str
    customer_number: str
    status: CustomerStatus
    credit_limit: Decimal | None = None
    currency: str | None = None
    credit_hold: bool = False
    payment_terms: str | None = None
    merged_into_customer_number: str | None = None
    event_id: str
    occurred_at_ms: int
    version: int = 1  # bumped by every event applied: orders the link's reference records

    @property
    def linked(self) -> bool:
        """Orders may be placed for the customer under this number."""
        return self.status is CustomerStatus.ACTIVE

    def crm_view(self) -> tuple:
        """What the CRM shows of the link (a change here is written back)."""
        return (self.customer_number, self.status, self.credit_limit, self.currency, self.credit_hold)


def apply(link: CustomerLink | None, event: CustomerEvent) -> CustomerLink | None:
    """The link after ``event``; None when the event changes nothing (a duplicate, a straggler, a
    kind this version does not know)."""
    status = _STATUS.get(event.kind)
    if status is None:
        return None
    if link is not None and (event.event_id == link.event_id or event.occurred_at_ms < link.occurred_at_ms):
        return None
    return CustomerLink(
        account_id=event.account_id,
        customer_number=event.customer_number,
        status=status,
        credit_limit=event.credit_limit,
        currency=event.currency,
        credit_hold=event.credit_hold,
        payment_terms=event.payment_terms,
        merged_into_customer_number=event.merged_into_customer_number,
        event_id=event.event_id,
        occurred_at_ms=event.occurred_at_ms,
        version=(link.version + 1) if link else 1,
    )


def write_back(before: CustomerLink | None, after: CustomerLink, lineage: Lineage, now: dt.datetime) -> list[Output]:
    """The CRM update (and its audit record) for a link that changed what the CRM shows; none otherwise."""
    if before is not None and before.crm_view() == after.crm_view():
        return []
    return account_update(after, f"{after.account_id}:link:{after.event_id}", f"erp-customer/{after.event_id}",
                          lineage, now)  # fmt: skip


def account_update(link: CustomerLink, command_id: str, cause: str, lineage: Lineage, now: dt.datetime) -> list[Output]:
    """The CRM update carrying everything the CRM shows of ``link``, and its audit record."""
    envelope = command_envelope(command_id, link.account_id, [cause], lineage, None, now)
    value = {
        "envelope": envelope,
        "account_id": link.account_id,
        "erp_customer_number": link.customer_number,
        "erp_customer_status": str(link.status),
        "credit_limit": None if link.credit_limit is None else str(link.credit_limit),
        "currency": link.currency,
        "credit_hold": link.credit_hold,
    }
    return [
        CrmAccountUpdate(link.account_id, value),
        command_audit(command_id, link.account_id, [lineage.coordinates], CrmAccountUpdate, now),
    ]
