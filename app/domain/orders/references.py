"""Reference data an order needs but the deal does not carry: accounts, products, list prices."""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from app.domain.changes import Position
from app.domain.customer_links import CustomerLink
from app.domain.orders.deal import Address


class Account(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    erp_customer_number: str | None = None
    payment_terms: str | None = None
    tax_exempt: bool = False
    tax_code: str | None = None
    credit_status: str | None = None
    last_modified_by: str | None = None
    last_modified_at: object | None = None
    bill_to: Address | None = None
    ship_to: Address | None = None
    merged_into: str | None = None  # the CRM merged this account into that one (it is deleted next)
    # ERP-owned columns the CRM shows (written back from the customer link; a user's edit is a conflict)
    erp_customer_status: str | None = None
    credit_limit: Decimal | None = None
    credit_hold: bool | None = None


class Product(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: str | None = None
    name: str | None = None
    erp_item_code: str | None = None
    active: bool = True
    unit_of_measure: str | None = None


class References(Protocol):
    def account(self, account_id: str) -> Account | None: ...

    def product(self, product_id: str) -> Product | None: ...

    def list_price(self, product_id: str, currency: str) -> Decimal | None: ...

    def link(self, account_id: str) -> CustomerLink | None: ...

    def resync_barrier(self, table: str) -> Position | None:
        """The newest overflow of ``table``'s source entity (an unknown set of its records changed
        then): a record without a full image newer than it has a hole."""
        ...
