"""Factories for deal-level unit tests: row changes, references, lineage."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from app.domain.changes import Lineage, Op, Position, RowChange
from app.domain.customer_links import CustomerLink
from app.domain.orders.deal import Address
from app.domain.orders.decide import DealChange
from app.domain.orders.references import Account, Product

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
ADDRESS = {"street": "Hauptstr. 1", "city": "Berlin", "postal_code": "10115", "country": "DE"}


@dataclass
class FakeReferences:
    accounts: dict[str, Account] = field(default_factory=dict)
    products: dict[str, Product] = field(default_factory=dict)
    prices: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    links: dict[str, CustomerLink] = field(default_factory=dict)
    barriers: dict[str, Position] = field(default_factory=dict)

    def account(self, account_id):
        return self.accounts.get(account_id)

    def product(self, product_id):
        return self.products.get(product_id)

    def list_price(self, product_id, currency):
        return self.prices.get((product_id, currency))

    def link(self, account_id):
        return self.links.get(account_id)

    def resync_barrier(self, table):
        return self.barriers.get(table)


def references(linked: bool = True) -> FakeReferences:
    return FakeReferences(
        accounts={
            "acc-1": Account(
                name="ACME GmbH",
                erp_customer_number="C-1001" if linked else None,
                payment_terms="NET30",
                tax_code="DE-STD",
                bill_to=Address(**ADDRESS),
                ship_to=Address(**ADDRESS),
            )
        },
        products={
            "prod-a": Product(sku="SKU-A", name="Platform", erp_item_code="ITEM-A"),
            "prod-b": Product(sku="SKU-B", name="Support", erp_item_code="ITEM-B"),
        },
        prices={("prod-a", "EUR"): Decimal("100.00"), ("prod-b", "EUR"): Decimal("50.00")},
    )


class Source:
    """Hands out increasing LSNs and offsets, like one Debezium connector feeding one topic."""

    def __init__(self) -> None:
        self.lsn = 1000
        self.offset = 0

    def change(self, table: str, row_id: str, fields: dict, op: Op = Op.UPSERT, unavailable=()) -> RowChange:
        self.lsn += 10
        return RowChange(table, op, row_id, fields, frozenset(unavailable), Position(self.lsn, self.lsn), False)

    def event(self, opp: str, change: RowChange | None) -> DealChange:
        self.offset += 1
        lineage = Lineage("crm.public.opportunity", 0, self.offset, 7, 1_700_000_000_000)
        return DealChange(opp, change, lineage, f"sync.deal-changes/0/{self.offset}")


def header(stage: str = "CLOSED_WON", amount: str = "250.00", **overrides) -> dict:
    fields = {
        "account_id": "acc-1",
        "name": "ACME expansion",
        "stage": stage,
        "amount": Decimal(amount),
        "currency": "EUR",
        "close_date": dt.date(2026, 11, 27),
        "payment_terms": "NET30",
        "billing_schedule": "ANNUAL",
        "tax_code": "DE-STD",
        "tax_exempt": False,
        "contract_term_months": 12,
        "last_modified_by": "005-sales",
        "deleted": False,
        "bill_to": ADDRESS,
        "ship_to": ADDRESS,
    }
    return {**fields, **overrides}


def line(opp: str, product: str, qty: str, price: str, **overrides) -> dict:
    total = (Decimal(qty) * Decimal(price)).quantize(Decimal("0.01"))
    fields = {
        "opportunity_id": opp,
        "product_id": product,
        "quantity": Decimal(qty),
        "unit_price": Decimal(price),
        "total_price": total,
    }
    return {**fields, **overrides}
