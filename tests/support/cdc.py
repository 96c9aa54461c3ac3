"""A real CDC producer per test: its own CRM database in the local PostgreSQL, and its own Debezium
connector (slot and topic prefix) in the local Kafka Connect, writing the sandbox's CDC topics."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from app.platform import cdc
from tests.support.kafka import Sandbox

ADDRESS = {"street": "Friedrichstraße 100", "city": "Berlin", "postal_code": "10117", "country": "DE"}
SALES_USER = "005-sales"


class CrmDatabase:
    """The sandbox's CRM in PostgreSQL, captured by its own Debezium connector once ``capture`` is called."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sb = sandbox
        self.name = sandbox.prefix.rstrip(".").replace("-", "_")  # a database, slot and connector name
        self.settings = sandbox.settings
        cdc.create_database(self.settings, self.name)
        self.connector: str | None = None

    # --- SQL ---------------------------------------------------------------------------
    def sql(self, statement: str, params: tuple | dict | None = None) -> list[tuple]:
        with cdc.admin(self.settings, self.name) as conn:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else []

    def row(self, table: str, row_id: str) -> dict[str, Any] | None:
        with cdc.admin(self.settings, self.name) as conn:
            cur = conn.execute(f"SELECT * FROM {table} WHERE id = %s", (row_id,))
            found = cur.fetchone()
            return dict(zip([c.name for c in cur.description], found, strict=True)) if found else None

    def insert(self, table: str, **values: Any) -> None:
        cols = ", ".join(values)
        marks = ", ".join(["%s"] * len(values))
        self.sql(f"INSERT INTO {table} ({cols}) VALUES ({marks})", tuple(values.values()))

    def update(self, table: str, row_id: str, **values: Any) -> None:
        sets = ", ".join(f"{c} = %s" for c in values)
        self.sql(f"UPDATE {table} SET {sets} WHERE id = %s", (*values.values(), row_id))

    # --- a standard world --------------------------------------------------------------
    def reference_data(self, account: str = "001-1", linked: bool = True) -> None:
        address = {f"billing_{k}": v for k, v in ADDRESS.items()} | {f"shipping_{k}": v for k, v in ADDRESS.items()}
        self.insert(
            "account", id=account, name="ACME GmbH", erp_customer_number="C-1001" if linked else None,
            payment_terms="NET30", tax_code="STD", last_modified_by_id=SALES_USER, **address,
        )  # fmt: skip
        for product, sku, price in (("01t-a", "SKU-A", "100.00"), ("01t-b", "SKU-B", "50.00")):
            self.insert("product", id=product, product_code=sku, name=sku, erp_item_code=f"ITEM-{sku[-1]}")
            self.insert(
                "pricebook_entry", id=f"01u-{sku[-1].lower()}", pricebook_id="01s-std", product_id=product,
                currency_iso_code="EUR", unit_price=Decimal(price),
            )  # fmt: skip

    def opportunity(self, opp: str, stage: str = "Prospecting", amount: str = "250.00", **extra: Any) -> None:
        extra.setdefault("close_date", dt.date.today())
        self.insert(
            "opportunity", id=opp, account_id="001-1", name=f"Deal {opp}", stage_name=stage, amount=Decimal(amount),
            billing_schedule="Annual", last_modified_by_id=SALES_USER, **extra,
        )  # fmt: skip

    def line(self, line_id: str, opp: str, product: str, quantity: int, unit_price: str) -> None:
        price = Decimal(unit_price)
        self.insert(
            "opportunity_line_item", id=line_id, opportunity_id=opp, product_id=product, quantity=quantity,
            unit_price=price, list_price=price, total_price=price * quantity,
        )  # fmt: skip

    def deal(self, opp: str, stage: str = "Closed Won", **extra: Any) -> None:
        """An opportunity with two lines (2 x A at 100, 1 x B at 50 = 250.00) moved to ``stage``;
        ``extra``: other opportunity columns."""
        self.opportunity(opp, **extra)
        self.line(f"{opp}-l1", opp, "01t-a", 2, "100.00")
        self.line(f"{opp}-l2", opp, "01t-b", 1, "50.00")
        self.stage(opp, "Negotiation")
        self.stage(opp, stage)

    def stage(self, opp: str, stage: str) -> None:
        self.update("opportunity", opp, stage_name=stage, last_modified_by_id=SALES_USER, last_modified_date="now")

    # --- the connector -----------------------------------------------------------------
    def capture(self, **overrides: str) -> None:
        """Start the sandbox's Debezium connector: a snapshot of what is there, then streaming."""
        self.connector = f"{self.name}-source"
        config = cdc.source_config(self.settings, database=self.name, slot=self.name) | overrides
        cdc.put_connector(self.settings, self.connector, config)
        cdc.wait_running(self.settings, self.connector)

    def drop(self) -> None:
        if self.connector is not None:
            cdc.delete_connector(self.settings, self.connector)
            cdc.drop_slot(self.settings, self.name)
        cdc.drop_database(self.settings, self.name)
