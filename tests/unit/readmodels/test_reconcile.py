"""Reconciliation from deal state: one category per order, reasons, amounts, time range, rendering."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from app.domain.feedback.lifecycle import AlertRef, Applied, ErpView
from app.domain.orders.deal import DealState, OrderRef
from app.readmodels.reconcile import Category, classify, reconcile, render_table

T0 = 1_717_200_000_000  # 2024-06-01T00:00:00Z
HOUR = 3_600_000


def order(amount="100.00", currency="EUR", at=T0) -> OrderRef:
    return OrderRef(create_command_id="c", digest="d", amount=Decimal(amount), currency=currency, commanded_at_ms=at)


def erp(accepted: str | None = "100.00", currency="EUR", at=T0 + HOUR, rejected=None, events=None) -> ErpView:
    events = events if events is not None else [at]
    return ErpView(
        accepted_amount=Decimal(accepted) if accepted else None,
        accepted_currency=currency if accepted else None,
        accepted_at_ms=at if accepted else None,
        rejected=rejected,
        events=[Applied(event_id=f"e{i}", kind="x", occurred_at_ms=t, coordinates="t") for i, t in enumerate(events)],
    )


def alert(kind: str) -> AlertRef:
    return AlertRef(alert_id="a", opened_at_ms=T0, kind=kind, severity="HIGH")


def deal(opp="opp-1", **kw) -> DealState:
    return DealState(opportunity_id=opp, **kw)


def test_accepted_order_without_alerts_is_matched():
    c = classify(deal(order=order(), erp=erp()))
    assert c.category is Category.MATCHED and c.reasons == ()
    assert (c.crm_amount, c.crm_currency, c.erp_amount, c.erp_currency) == (
        Decimal("100.00"), "EUR", Decimal("100.00"), "EUR",
    )  # fmt: skip


def test_open_missing_event_for_a_later_step_keeps_the_order_matched_and_is_counted_apart():
    state = deal(order=order(), erp=erp(), alerts={"missing:invoiced": alert("MISSING_EVENT")})
    c = classify(state)
    assert c.category is Category.MATCHED and c.open_missing == ("missing:invoiced",)
    report = reconcile([state])
    assert report.categories[Category.MATCHED].count == 1
    assert report.open_missing_events == 1 and report.open_missing_by_finding == {"missing:invoiced": 1}
    assert report.attention == []


@pytest.mark.parametrize(
    ("key", "kind"),
    [("amount:accepted", "AMOUNT_MISMATCH"), ("lines", "LINE_MISMATCH"), ("gap:overpaid", "LIFECYCLE_GAP")],
)
def test_open_mismatch_alert_makes_the_order_mismatched(key, kind):
    c = classify(deal(order=order(), erp=erp("90.00"), alerts={key: alert(kind)}))
    assert c.category is Category.MISMATCHED and c.reasons == (kind,) and c.finding_keys == (key,)


def test_mismatch_reasons_list_every_open_mismatch_kind_but_not_missing_events():
    alerts = {"lines": alert("LINE_MISMATCH"), "amount:accepted": alert("AMOUNT_MISMATCH")}
    alerts["missing:paid"] = alert("MISSING_EVENT")
    c = classify(deal(order=order(), erp=erp(), alerts=alerts))
    assert c.reasons == ("AMOUNT_MISMATCH", "LINE_MISMATCH")
    assert c.finding_keys == ("amount:accepted", "lines", "missing:paid")


def test_shipped_before_acceptance_is_a_mismatch_not_an_order_missing_in_the_erp():
    c = classify(deal(order=order(), erp=erp(None), alerts={"gap:not-accepted": alert("LIFECYCLE_GAP")}))
    assert c.category is Category.MISMATCHED


def test_order_without_any_erp_event_awaits_acceptance():
    c = classify(deal(order=order()))
    assert c.category is Category.ONLY_IN_CRM and c.reasons == ("AWAITING_ACCEPTANCE",)
    assert c.erp_amount is None


def test_order_past_its_acceptance_sla_carries_the_missing_event():
    c = classify(deal(order=order(), alerts={"missing:accepted": alert("MISSING_EVENT")}))
    assert c.category is Category.ONLY_IN_CRM and c.reasons == ("MISSING_EVENT",)


def test_rejected_order_is_only_in_crm_with_the_rejection():
    c = classify(deal(order=order(), erp=erp(None, rejected="CREDIT_LIMIT")))
    assert c.category is Category.ONLY_IN_CRM and c.reasons == ("ERP_REJECTED",)
    c = classify(deal(order=order(), open_exceptions={"ERP_REJECTED": "x"}))
    assert c.reasons == ("ERP_REJECTED",)


def test_erp_events_for_an_order_never_commanded_are_only_in_erp():
    state = deal(erp=erp("70.00", "USD"), alerts={"gap:unknown-order": alert("LIFECYCLE_GAP")})
    c = classify(state)
    assert c.category is Category.ONLY_IN_ERP and c.reasons == ("UNKNOWN_ORDER",)
    assert c.crm_amount is None and (c.erp_amount, c.erp_currency) == (Decimal("70.00"), "USD")
    assert c.finding_keys == ("gap:unknown-order",)


def test_erp_events_for_a_cancelled_order_are_only_in_erp():
    c = classify(deal(erp=erp(), cancelled_orders=["c"]))
    assert c.category is Category.ONLY_IN_ERP and c.reasons == ("CANCELLED_IN_CRM",)


def test_deals_without_order_or_erp_events_are_skipped():
    states = [deal(), deal(cancelled_orders=["c"]), deal(erp=ErpView(reissued_at_ms=T0))]
    assert all(classify(s) is None for s in states)
    report = reconcile(states)
    assert report.skipped == 3 and report.orders == 0


def _mixed() -> list[DealState]:
    return [
        deal("m1", order=order("100.00"), erp=erp("100.00")),
        deal("m2", order=order("50.00", "USD"), erp=erp("50.00", "USD")),
        deal("m3", order=order("25.50"), erp=erp("25.50")),
        deal("x1", order=order("200.00"), erp=erp("180.00"), alerts={"amount:accepted": alert("AMOUNT_MISMATCH")}),
        deal("c1", order=order("10.00")),
        deal("c2", order=order("20.00"), erp=erp(None, rejected="R")),
        deal("e1", erp=erp("70.00", "USD")),
        deal("skip"),
    ]


def test_report_counts_amounts_per_currency_and_reasons_per_category():
    report = reconcile(_mixed())
    cats = report.categories
    assert {c: s.count for c, s in cats.items()} == {
        Category.MATCHED: 3, Category.ONLY_IN_CRM: 2, Category.ONLY_IN_ERP: 1, Category.MISMATCHED: 1,
    }  # fmt: skip
    assert cats[Category.MATCHED].crm_amount == {"EUR": Decimal("125.50"), "USD": Decimal("50.00")}
    assert cats[Category.MATCHED].erp_amount == {"EUR": Decimal("125.50"), "USD": Decimal("50.00")}
    assert cats[Category.MISMATCHED].crm_amount == {"EUR": Decimal("200.00")}
    assert cats[Category.MISMATCHED].erp_amount == {"EUR": Decimal("180.00")}
    assert cats[Category.ONLY_IN_CRM].crm_amount == {"EUR": Decimal("30.00")}
    assert cats[Category.ONLY_IN_CRM].erp_amount == {}
    assert cats[Category.ONLY_IN_CRM].reasons == {"AWAITING_ACCEPTANCE": 1, "ERP_REJECTED": 1}
    assert cats[Category.ONLY_IN_ERP].erp_amount == {"USD": Decimal("70.00")}
    assert report.orders == 7 and report.skipped == 1
    assert [c.opportunity_id for c in report.attention] == ["c1", "c2", "e1", "x1"]


def test_json_is_serialisable_with_decimal_strings():
    out = reconcile(_mixed(), since_ms=T0).to_json()
    json.dumps(out)
    assert out["range"] == {"since": "2024-06-01T00:00:00+00:00", "until": None}
    assert out["categories"]["matched"]["crm_amount"] == {"EUR": "125.50", "USD": "50.00"}
    assert out["categories"]["only_in_crm"]["reasons"] == {"AWAITING_ACCEPTANCE": 1, "ERP_REJECTED": 1}
    assert out["orders"] == 7 and out["open_missing_events"] == 0
    assert out["attention"][0] == {
        "opportunity_id": "c1", "category": "only_in_crm", "reasons": ["AWAITING_ACCEPTANCE"], "finding_keys": [],
        "at": "2024-06-01T00:00:00+00:00", "crm_amount": "10.00", "crm_currency": "EUR", "erp_amount": None,
        "erp_currency": None,
    }  # fmt: skip


def test_time_range_uses_the_create_command_time_with_inclusive_start_and_exclusive_end():
    states = [deal(f"o{i}", order=order(at=T0 + i * HOUR)) for i in range(4)]
    report = reconcile(states, since_ms=T0 + HOUR, until_ms=T0 + 3 * HOUR)
    assert sorted(c.opportunity_id for c in report.attention) == ["o1", "o2"]
    assert report.outside_range == 2
    assert reconcile(states, since_ms=T0 + 2 * HOUR).orders == 2
    assert reconcile(states, until_ms=T0 + HOUR).orders == 1


def test_time_range_places_only_in_erp_deals_by_their_first_erp_event():
    state = deal(erp=erp(events=[T0 + 5 * HOUR, T0 + 2 * HOUR, T0 + 9 * HOUR]))
    assert classify(state).at_ms == T0 + 2 * HOUR
    assert reconcile([state], since_ms=T0 + 2 * HOUR, until_ms=T0 + 3 * HOUR).orders == 1
    assert reconcile([state], since_ms=T0 + 3 * HOUR).outside_range == 1


def test_undated_orders_fall_outside_any_range_but_count_without_one():
    state = deal(order=order(at=None))
    assert reconcile([state]).orders == 1
    assert reconcile([state], since_ms=T0).outside_range == 1


def test_table_shows_categories_amounts_reasons_and_the_orders_needing_attention():
    state = deal("m9", order=order(), erp=erp(), alerts={"missing:paid": alert("MISSING_EVENT")})
    text = render_table(reconcile([*_mixed(), state], since_ms=T0))
    lines = text.splitlines()
    assert lines[0] == "reconciliation 2024-06-01T00:00:00+00:00 .. (now)"
    assert "8 order(s)" in lines[1] and "1 deal(s) without an order skipped" in lines[1]
    matched = next(ln for ln in lines if ln.startswith("matched "))
    assert matched.split()[1] == "4" and "EUR 225.50, USD 50.00" in matched
    assert any(ln.split() == ["only_in_crm", "ERP_REJECTED", "1"] for ln in lines)
    assert "matched orders with an open MISSING_EVENT alert: 1 (missing:paid 1)" in lines
    x1 = next(ln for ln in lines if ln.startswith("x1 "))
    assert x1.split()[:5] == ["x1", "mismatched", "AMOUNT_MISMATCH", "EUR", "200.00"]


def test_table_caps_the_attention_list():
    text = render_table(reconcile([deal(f"c{i}", order=order()) for i in range(5)]), max_rows=2)
    assert "... and 3 more (use --json for all)" in text
    assert "c2 " not in text


def test_empty_report_renders():
    text = render_table(reconcile([]))
    assert "0 order(s)" in text and "needing attention" not in text
