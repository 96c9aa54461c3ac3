"""The one-command demo on the real platform: every flow is exercised and the orders add up."""

from __future__ import annotations

import pytest

from app.ops import demo
from app.settings import Settings
from tests.support.kafka import free_port

pytestmark = pytest.mark.integration


@pytest.mark.timeout(420)
def test_a_short_demo_exercises_every_flow_and_creates_exactly_the_expected_orders(platform: Settings):
    lines: list[str] = []
    summary = demo.run(platform.model_copy(update={"web_port": free_port()}), seconds=25, rate=40, say=lines.append)
    crm, s = summary["crm"], summary["service"]
    assert crm["deals"]["finished"] > 20 and crm["malformed_sent"] > 0 and crm["duplicates_sent"] > 0
    assert s["orders_created"] == crm["expected"]["create_command_ids"] > 0
    assert (s["amends"], s["cancels"]) == (crm["expected"]["amends"], crm["expected"]["cancels"])
    assert s["customer_upserts"] > 0 and s["crm_updates"] > 0 and s["duplicates_suppressed"] > 0
    # the link loop: every account the CRM sent got its ERP customer; no deal waits for a link the ERP gave
    assert s["customers_linked"] > 0 and s["deals_waiting_for_a_link"] == 0
    assert s["orders_activated"] > 0 and s["orders_accepted_by_customer"] > 0  # milestones reached the CRM
    # renewals: one request per ended term; the ones the CRM renewed resolve their RENEWAL_MISSING
    assert s["renewals_requested"] == crm["expected"]["renewals_due"] > 0
    missing = s["drift_alerts_by_kind"]["RENEWAL_MISSING"]
    assert missing["opened"] - missing["resolved"] == crm["expected"]["renewals_missing"] > 0
    kpis = s["lifecycle_kpis"]  # from the worker's metrics
    assert all(kpis["cycles"][c]["count"] > 0 for c in ("order_handoff", "close_to_invoice", "invoice_to_paid"))
    assert kpis["deals_closed_won"] >= s["orders_created"] and kpis["exceptions_per_100_deals"] > 0
    assert kpis["orders_billing_checked"] > 0 and 0 < kpis["billing_accuracy"] < 1  # the ERP drifts some invoices
    assert any("billing accuracy" in line for line in lines[-1].splitlines())
    assert summary["erp"]["customers"]["events"].get("CREATED", 0) > 0  # accounts new to the ERP
    assert s["quarantined_by_reason"] and s["exceptions_by_reason"]
    assert sum(s["quarantined_by_reason"].values()) == crm["malformed_sent"]  # only the damaged copies
    assert s["drift_alerts_by_kind"]
    assert s["create_latency_ms"]["count"] == s["orders_created"]
    assert any(line.startswith("worker: ") for line in lines)  # progress while it runs
    assert "orders created" in lines[-1] and "/ops" not in lines[-1]  # the worker is gone: no dead link
