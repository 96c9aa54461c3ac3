"""A small CRM world for integration tests: accounts, products, prices and deals as Debezium CDC."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from app.sim import debezium as dbz
from tests.support.kafka import Sandbox


class Crm:
    """Writes CRM rows as a Debezium connector would (raw envelopes, increasing LSNs)."""

    def __init__(self, sandbox: Sandbox, start_lsn: int = 0x2000_0000) -> None:
        self.sb = sandbox
        self.lsn = dbz.Lsn(start=start_lsn, ts_ms=int(time.time() * 1000))
        self.rows: dict[tuple[str, str], dict] = {}

    def upsert(self, table: str, row: dict) -> dict:
        before = self.rows.get((table, row["id"]))
        env = dbz.create(table, row, self.lsn) if before is None else dbz.update(table, before, row, self.lsn)
        self.rows[(table, row["id"])] = row
        self.sb.produce_cdc(table, row["id"], env)
        return env

    def delete(self, table: str, row_id: str) -> None:
        before = self.rows.pop((table, row_id))
        self.sb.produce_cdc(table, row_id, dbz.delete(table, before, self.lsn))
        self.sb.produce_cdc(table, row_id, None)  # the tombstone Debezium writes after a delete

    def resend(self, table: str, row_id: str, envelope: dict) -> None:
        """The same change event again (a connector restart re-sends what it had not committed)."""
        self.sb.produce_cdc(table, row_id, envelope)

    # --- a standard world ---------------------------------------------------------
    def reference_data(self, account: str = "acc-1", linked: bool = True) -> None:
        self.upsert("account", dbz.account_row(account, "ACME GmbH", erp_customer_number="C-1001" if linked else None))
        self.upsert("product", dbz.product_row("prod-a", "SKU-A", "Platform"))
        self.upsert("product", dbz.product_row("prod-b", "SKU-B", "Support"))
        self.upsert("pricebook_entry", dbz.pricebook_row("pbe-a", "prod-a", "EUR", Decimal("100.00")))
        self.upsert("pricebook_entry", dbz.pricebook_row("pbe-b", "prod-b", "EUR", Decimal("50.00")))

    def deal(self, opp: str, account: str = "acc-1", stage: str = "Closed Won", **fields: Any) -> dict[str, dict]:
        """An opportunity with two lines (2 x A at 100, 1 x B at 50 = 250.00) progressing to ``stage``;
        ``fields``: opportunity columns that differ from ``dbz.opportunity_row``'s."""
        events = {}
        amount = Decimal("250.00")
        events["open"] = self.upsert("opportunity", dbz.opportunity_row(opp, account, "Prospecting", amount, **fields))
        events["l1"] = self.upsert("opportunity_line_item", dbz.line_row(f"{opp}-l1", opp, "prod-a", 2, Decimal("100")))
        events["l2"] = self.upsert("opportunity_line_item", dbz.line_row(f"{opp}-l2", opp, "prod-b", 1, Decimal("50")))
        negotiate = dbz.opportunity_row(opp, account, "Negotiation", amount, **fields)
        events["negotiate"] = self.upsert("opportunity", negotiate)
        events["close"] = self.upsert("opportunity", dbz.opportunity_row(opp, account, stage, amount, **fields))
        return events

    def stage(self, opp: str, stage: str, account: str = "acc-1") -> dict:
        return self.upsert("opportunity", dbz.opportunity_row(opp, account, stage, Decimal("250.00")))
