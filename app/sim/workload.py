"""A seeded stream of realistic CRM CDC for benchmarks and load: reference data, then deals.

Each deal is five change events — the opportunity created, three line items, the opportunity
moved to Closed Won — with decimal money, across as many accounts and products as asked.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from decimal import Decimal

from app.sim import debezium as dbz

CURRENCIES = ("EUR", "USD", "GBP")
EVENTS_PER_DEAL = 5


def reference_data(lsn: dbz.Lsn, accounts: int = 50, products: int = 20) -> Iterator[tuple[str, str, dict]]:
    """(table, row id, envelope) for linked accounts, mapped products and their list prices."""
    for a in range(accounts):
        row = dbz.account_row(f"acc-{a}", f"Customer {a} GmbH", erp_customer_number=f"C-{10000 + a}")
        yield "account", row["id"], dbz.create("account", row, lsn)
    for p in range(products):
        row = dbz.product_row(f"prod-{p}", f"SKU-{p}", f"Product {p}")
        yield "product", row["id"], dbz.create("product", row, lsn)
        for currency in CURRENCIES:
            price = Decimal(100 + 10 * p)
            pbe = dbz.pricebook_row(f"pbe-{p}-{currency}", row["id"], currency, price)
            yield "pricebook_entry", pbe["id"], dbz.create("pricebook_entry", pbe, lsn)


def deals(
    lsn: dbz.Lsn, count: int, seed: int = 7, accounts: int = 50, products: int = 20, prefix: str = "opp"
) -> Iterator[tuple[str, str, dict]]:
    """(table, row id, envelope) for ``count`` deals that end closed-won and complete."""
    rng = random.Random(seed)
    for d in range(count):
        opp = f"{prefix}-{d}"
        account = f"acc-{rng.randrange(accounts)}"
        currency = rng.choice(CURRENCIES)
        lines = []
        for i in range(3):
            p = rng.randrange(products)
            qty = rng.randint(1, 20)
            unit = Decimal(100 + 10 * p) * (1 - Decimal(rng.randint(0, 20)) / 100)
            lines.append(dbz.line_row(f"{opp}-l{i}", opp, f"prod-{p}", qty, unit.quantize(Decimal("0.01"))))
        amount = sum((ln["total_price"] for ln in lines), Decimal(0))
        opened = dbz.opportunity_row(opp, account, "Prospecting", amount, currency=currency)
        yield "opportunity", opp, dbz.create("opportunity", opened, lsn)
        for ln in lines:
            yield "opportunity_line_item", ln["id"], dbz.create("opportunity_line_item", ln, lsn)
        won = dbz.opportunity_row(opp, account, "Closed Won", amount, currency=currency)
        yield "opportunity", opp, dbz.update("opportunity", opened, won, lsn)


def settling_deals(lsn: dbz.Lsn, count: int, seed: int = 11, prefix: str = "opp-s") -> Iterator[tuple[str, str, dict]]:
    """``deals`` that are then lost: each is ordered, then cancelled, and so settles (6 CDC events)."""
    for table, row_id, envelope in deals(lsn, count, seed=seed, prefix=prefix):
        yield table, row_id, envelope
        if table == "opportunity" and envelope["after"]["stage_name"] == "Closed Won":
            lost = {**envelope["after"], "stage_name": "Closed Lost"}
            yield "opportunity", row_id, dbz.update("opportunity", envelope["after"], lost, lsn)
