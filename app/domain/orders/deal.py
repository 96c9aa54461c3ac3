"""The assembled deal: an opportunity header, its lines, and what the service has done about it.

Stored per opportunity in the deals table (JSON). Field names are the canonical names the
declarative mappings produce; ``extra="forbid"`` makes a mapping that names an unknown field fail
loudly instead of dropping data.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.domain.changes import Position, RowChange, keep
from app.domain.feedback.lifecycle import AlertRef, ErpView
from app.domain.owner_alerts import OpenAlerts


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Address(_Model):
    street: str | None = None
    city: str | None = None
    postal_code: str | None = None
    country: str | None = None

    @property
    def complete(self) -> bool:
        return bool(self.street and self.city and self.country)


class Header(_Model):
    account_id: str | None = None
    name: str | None = None
    stage: str = "UNKNOWN"
    amount: Decimal | None = None
    currency: str | None = None
    close_date: dt.date | None = None
    payment_terms: str | None = None
    billing_schedule: str | None = None
    tax_code: str | None = None
    tax_exempt: bool = False
    contract_term_months: int | None = None
    last_modified_by: str | None = None
    last_modified_at: dt.datetime | None = None
    created_at: dt.datetime | None = None
    deleted: bool = False
    bill_to: Address | None = None
    ship_to: Address | None = None
    renewal_of: str | None = None  # the opportunity whose contract this one renews
    # what the CRM shows of ERP-owned opportunity fields (the service writes them; a user may not)
    shown_erp_order_number: str | None = None
    shown_order_status: str | None = None
    shown_fulfilment_status: str | None = None
    shown_invoice_status: str | None = None
    shown_payment_status: str | None = None


class Line(_Model):
    opportunity_id: str | None = None
    product_id: str | None = None
    quantity: Decimal | None = None
    list_price: Decimal | None = None
    unit_price: Decimal | None = None
    discount_percent: Decimal | None = None
    total_price: Decimal | None = None
    service_start_date: dt.date | None = None
    service_end_date: dt.date | None = None


class Pos(_Model):
    lsn: int | None
    ts_ms: int
    commit: int | None = None
    seq: int | None = None

    @classmethod
    def of(cls, p: Position) -> Pos:
        return cls(lsn=p.lsn, ts_ms=p.ts_ms, commit=p.commit, seq=p.seq)

    def position(self) -> Position:
        return Position(self.lsn, self.ts_ms, self.commit, self.seq)


class OrderRef(_Model):
    """The order this deal produced: the create's command id and what it committed to."""

    create_command_id: str
    digest: str  # of everything the ERP was last told (the create, then each amend)
    amount: Decimal | None
    currency: str | None
    commanded_at_ms: int | None = None  # when the create was emitted: the acceptance SLA starts here
    terms: dict[str, str] = Field(default_factory=dict)  # per commanded field, a hash of its value


class Renewal(_Model):
    """The renewal the deal's contract term calls for (app/domain/orders/renewals.py)."""

    term_start: dt.date
    term_end: dt.date
    months: int
    requested: str | None = None  # command id of the renewal request sent for this term


class DealState(_Model):
    @model_validator(mode="before")
    @classmethod
    def _without_recent(cls, data: Any) -> Any:
        """States written before the engine's outbox kept their last decisions' outputs in ``recent``;
        the outbox holds them now (app/engine/keyed.py), so a stored ``recent`` is dropped on read."""
        if isinstance(data, dict) and "recent" in data:
            data = {k: v for k, v in data.items() if k != "recent"}
        return data

    opportunity_id: str
    header: Header | None = None
    header_pos: Pos | None = None
    lines: dict[str, Line] = Field(default_factory=dict)
    line_pos: dict[str, Pos] = Field(default_factory=dict)  # kept after a delete: stale re-creates lose
    close_pos: Pos | None = None  # the header version that made the deal closed-won
    order: OrderRef | None = None
    open_exceptions: dict[str, str] = Field(default_factory=dict)  # reason code -> exception id
    parked: bool = False
    failing_since: dt.datetime | None = None  # first failed validation of this close (grace period)
    cancelled_orders: list[str] = Field(default_factory=list)  # create command ids of cancelled orders
    erp: ErpView | None = None  # what the ERP reported about the order (None until its first event)
    alerts: dict[str, AlertRef] = Field(default_factory=dict)  # open drift alerts by finding key
    alert_seq: dict[str, int] = Field(default_factory=dict)  # finding key -> alerts opened so far
    parity: dict[str, list[Any] | None] = Field(default_factory=dict)  # side -> contribution last published
    line_partitions: dict[str, int] = Field(default_factory=dict)  # line id -> CDC partition its rows come from
    settled_at: dt.datetime | None = None  # since when nothing about the deal is open (app/domain/orders/retention.py)
    renewal: Renewal | None = None  # a won deal with a contract term: the renewal it expects
    renewals: dict[str, str] = Field(default_factory=dict)  # renewal opportunity id -> its stage (DELETED)
    owner_alerts: OpenAlerts = Field(default_factory=OpenAlerts)  # OWNERSHIP_CONFLICT alerts on the deal
    # holes a source that loses changes leaves (app/domain/orders/resync.py): record id -> position
    full_pos: dict[str, Pos] = Field(default_factory=dict)  # last full image, while partial updates followed it
    resync: dict[str, Pos] = Field(default_factory=dict)  # a lost change: waits for a full image newer than it


def source_ts_ms(state: DealState, item_ts_ms: int | None) -> int | None:
    """When the CRM made the change a command answers: a re-check (the deal waited for reference
    data) has no source time of its own, so the close that made the deal closed-won stands in."""
    if item_ts_ms:
        return item_ts_ms
    return state.close_pos.ts_ms if state.close_pos else None


def merge(model: type[_Model], previous: _Model | None, change: RowChange) -> Any:
    """The row after ``change``: unavailable (TOAST placeholder) fields keep their previous value."""
    base = previous.model_dump() if previous is not None else None
    return model.model_validate(keep(change.fields, change.unavailable, base))
