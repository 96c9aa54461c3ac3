"""The demo's summary counts what the service did by ids, against what the simulators sent."""

from __future__ import annotations

from decimal import Decimal

from app.ops.demo_report import Observed, Sample, lifecycle_kpis, render, summarise

CRM = {
    "messages": 120,
    "by_kind": {"change": 110, "duplicate": 4},
    "malformed_by_defect": {"truncated": 1, "bad_magic": 1},
    "deals": {"finished": 10, "closed_won": 7, "lost": 3, "reopened": 1, "deleted": 1},
    "expected": {"create_command_ids": 7, "amends": 1, "cancels": 1, "incomplete_deals": 1},
}
ERP = {
    "orders": 7,
    "outcomes": {"accepted": 6, "rejected": 1},
    "faults": {"rejected": 1},
    "events_delivered": {"x": 20},
}


def command(kind: str, command_id: str) -> dict:
    return {"envelope": {"command_id": command_id}, "command": (f"io.crmerpsync.erp.commands.{kind}", {})}


def test_commands_exceptions_and_alerts_are_counted_once_per_id_and_open_amounts_are_at_risk():
    seen = Observed(
        sales_orders=[
            command("CreateSalesOrder", "c1"),
            command("CreateSalesOrder", "c1"),
            command("CancelSalesOrder", "x"),
        ],
        exceptions=[
            {"exception_id": "e1", "reason_code": "NO_LINES", "amount_at_risk": Decimal("5.00"), "currency": "EUR"},
            {"exception_id": "e1", "reason_code": "NO_LINES", "amount_at_risk": Decimal("5.00"), "currency": "EUR"},
            {"exception_id": "e2", "reason_code": "ERP_REJECTED", "amount_at_risk": Decimal("9.00"), "currency": "EUR"},
        ],
        resolutions=[{"exception_id": "e2"}],
        alerts=[
            {"alert_id": "a1", "kind": "AMOUNT_MISMATCH", "state": "OPEN", "amount_at_risk": 10, "currency": "USD"},
            {"alert_id": "a1", "kind": "AMOUNT_MISMATCH", "state": "RESOLVED", "amount_at_risk": 10, "currency": "USD"},
            {"alert_id": "a2", "kind": "MISSING_EVENT", "state": "OPEN", "amount_at_risk": 3, "currency": "USD"},
        ],
        dead_letter_reasons=["BAD_MAGIC_BYTE", "AVRO_DECODE_ERROR", "BAD_MAGIC_BYTE"],
        create_latencies_ms=[10.0, 20.0, 30.0, 400.0],
        dedup_hits=4,
    )
    s = summarise(CRM, ERP, seen)["service"]
    assert (s["orders_created"], s["cancels"], s["amends"]) == (1, 1, 0)
    assert s["exceptions_by_reason"] == {"ERP_REJECTED": 1, "NO_LINES": 1} and s["exceptions_resolved"] == 1
    assert s["drift_alerts_by_kind"] == {
        "AMOUNT_MISMATCH": {"opened": 1, "resolved": 1},
        "MISSING_EVENT": {"opened": 1, "resolved": 0},
    }
    assert s["revenue_at_risk"] == {"EUR": "5.00", "USD": "3"}
    assert s["quarantined_by_reason"] == {"AVRO_DECODE_ERROR": 1, "BAD_MAGIC_BYTE": 2}
    assert s["create_latency_ms"]["count"] == 4 and s["create_latency_ms"]["p50"] == 25.0


def test_the_rendering_names_every_flow_and_where_to_look():
    text = render(summarise(CRM, ERP, Observed()), ["ops page  http://127.0.0.1:6066/ops"])
    for words in ("orders created", "duplicates suppressed", "exceptions by reason", "drift alerts by kind",
                  "revenue at risk", "CDC to order latency", "faults injected", "/ops"):  # fmt: skip
        assert words in text
    assert "p50 -" in text  # no creates: no invented figures


def test_the_lifecycle_kpis_come_from_the_worker_metrics_and_none_are_invented():
    def cycle(name: str, le: str, n: float) -> Sample:
        return Sample("crm_erp_sync_lifecycle_cycle_seconds_bucket", {"cycle": name, "le": le}, n)

    samples = [
        cycle("order_handoff", "1.0", 1),
        cycle("order_handoff", "10.0", 3),
        cycle("order_handoff", "+Inf", 4),
        Sample("crm_erp_sync_lifecycle_cycle_seconds_count", {"cycle": "order_handoff"}, 4),
        Sample("crm_erp_sync_lifecycle_cycle_seconds_sum", {"cycle": "order_handoff"}, 22),
        Sample("crm_erp_sync_orders_invoiced_total", {"accurate": "true"}, 9),
        Sample("crm_erp_sync_orders_invoiced_total", {"accurate": "false"}, 1),
        Sample("crm_erp_sync_deals_closed_won_total", {}, 40),
        Sample("crm_erp_sync_exceptions_raised_total", {"reason": "NO_LINES"}, 2),
        Sample("crm_erp_sync_exceptions_raised_total", {"reason": "ERP_REJECTED"}, 1),
    ]
    k = lifecycle_kpis(samples)
    assert k["cycles"]["order_handoff"] == {"count": 4, "mean_s": 5.5, "p50_at_most_s": 10.0}
    assert k["cycles"]["invoice_to_paid"] == {"count": 0, "mean_s": None, "p50_at_most_s": None}
    assert (k["billing_accuracy"], k["orders_billing_checked"]) == (0.9, 10)
    assert (k["exceptions_per_100_deals"], k["deals_closed_won"]) == (7.5, 40)
    empty = lifecycle_kpis([])
    assert empty["billing_accuracy"] is None and empty["exceptions_per_100_deals"] is None
    text = render(summarise(CRM, ERP, Observed(metrics=samples)))
    assert "billing accuracy       90.0 % of 10 orders" in text and "order handoff mean 5.5 s" in text
