"""Parity between what the CRM committed and what the ERP reports, without Kafka: findings, alerts, deadlines."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

from app.domain.feedback.lifecycle import (
    ErpKind,
    ErpView,
    Slas,
    apply,
    fulfilment_status,
    invoice_status,
    order_status,
    payment_status,
)
from app.domain.orders.deal import DealState
from app.domain.orders.decide import Outcome
from app.domain.orders.validation import Policy
from app.domain.parity.rules import DriftKind, expectations, findings, next_check_ms
from app.engine.routes import record, route
from tests.support.erp import (
    OPP,
    Deal,
    alert_audits,
    alerts,
    at,
    contract_problems,
    ms,
    ship,
    statuses,
    updates,
)


def opened(decision_or_outputs) -> list[str]:
    return [a["alert_id"] for a in alerts(decision_or_outputs) if a["state"] == "OPEN"]


def resolved(decision_or_outputs) -> list[str]:
    return [a["alert_id"] for a in alerts(decision_or_outputs) if a["state"] == "RESOLVED"]


def accepted_deal(**fields) -> Deal:
    deal = Deal()
    deal.erp(ErpKind.ACCEPTED, at(minutes=5), **fields)
    return deal


# --- amounts ----------------------------------------------------------------------------------


def test_an_accepted_amount_that_differs_opens_an_amount_mismatch_that_stays_open():
    deal = Deal()
    d = deal.erp(ErpKind.ACCEPTED, at(minutes=5), accepted_amount="240.00")
    [alert] = alerts(d)
    assert alert["alert_id"] == f"{OPP}:amount:accepted:1" and alert["state"] == "OPEN"
    assert alert["kind"] == "AMOUNT_MISMATCH" and alert["severity"] == "HIGH"
    assert alert["expected"] == "250.00 EUR" and alert["observed"] == "240.00 EUR"
    assert alert["amount_at_risk"] == "10.00" and alert["currency"] == "EUR"
    assert alert["detail"] == "closed-won amount and ERP order amount differ"
    assert alert["suggested_owner"] == "deal-desk" and alert["order_number"] == "SO-1"
    # the ERP goes on with its own amount: nothing restores parity, so the alert neither repeats nor resolves
    later = [
        deal.erp(ErpKind.SHIPPED, at(days=1)),
        deal.erp(ErpKind.INVOICED, at(days=2), amount="240.00"),  # consistent with what the ERP accepted
        deal.erp(ErpKind.PAID, at(days=3), amount="240.00"),
        deal.recheck(at(days=40)),
    ]
    assert [alerts(d) for d in later] == [[], [], [], []]
    assert list(deal.state.alerts) == ["amount:accepted"]


def test_an_accepted_amount_within_the_tolerance_is_parity():
    deal = accepted_deal(accepted_amount="250.01")  # Policy.amount_tolerance is 0.01
    assert alerts(deal.outputs) == []


def test_an_acceptance_in_another_currency_is_a_currency_mismatch():
    deal = Deal()
    d = deal.erp(ErpKind.ACCEPTED, at(minutes=5), currency="USD")
    [alert] = alerts(d)
    assert alert["alert_id"] == f"{OPP}:amount:accepted:1" and alert["kind"] == "AMOUNT_MISMATCH"
    assert alert["detail"] == "the ERP accepted the order in another currency"
    assert alert["expected"] == "250.00 EUR" and alert["observed"] == "250.00 USD"
    assert alert["amount_at_risk"] == "250.00"  # the whole order is at risk, not a difference of 0
    assert updates(d)[0]["currency"] == "USD"  # the CRM is told the currency the ERP uses


def test_an_invoice_short_of_the_accepted_amount_opens_and_a_second_invoice_resolves_it():
    deal = accepted_deal()
    deal.erp(ErpKind.SHIPPED, at(days=1))
    short = deal.erp(ErpKind.INVOICED, at(days=2), amount="200.00")
    [alert] = alerts(short)
    assert alert["alert_id"] == f"{OPP}:amount:invoiced:1" and alert["kind"] == "AMOUNT_MISMATCH"
    assert alert["expected"] == "250.00 EUR" and alert["observed"] == "200.00 EUR"
    assert alert["amount_at_risk"] == "50.00" and alert["suggested_owner"] == "billing"
    rest = deal.erp(ErpKind.INVOICED, at(days=2, hours=1), invoice_number="INV-2", amount="50.00")
    assert resolved(rest) == [alert["alert_id"]] and opened(rest) == []
    assert updates(rest)[0]["amount_invoiced"] == "250.00"


def test_an_instalment_invoice_below_the_order_amount_is_no_mismatch_but_over_invoicing_is():
    deal = accepted_deal()
    deal.header(at(minutes=6), billing_schedule="MONTHLY")  # CRM edit: billed monthly from now on
    deal.erp(ErpKind.SHIPPED, at(days=1))
    first = deal.erp(ErpKind.INVOICED, at(days=2), amount="20.83")
    assert alerts(first) == []
    over = deal.erp(ErpKind.INVOICED, at(days=3), invoice_number="INV-2", amount="240.00")
    [alert] = alerts(over)
    assert (alert["alert_id"], alert["observed"]) == (f"{OPP}:amount:invoiced:1", "260.83 EUR")


def test_an_invoice_in_another_currency_than_the_acceptance_is_a_mismatch():
    deal = accepted_deal()
    deal.erp(ErpKind.SHIPPED, at(days=1))
    d = deal.erp(ErpKind.INVOICED, at(days=2), currency="USD")
    [alert] = alerts(d)
    assert alert["alert_id"] == f"{OPP}:amount:invoiced:1"
    assert alert["observed"] == "250.00 USD" and alert["currency"] == "USD"


# --- lines ------------------------------------------------------------------------------------


def line_alert(deal: Deal, lines: list[dict], complete: bool) -> dict:
    d = deal.erp(ErpKind.SHIPPED, at(days=1), lines=lines, complete=complete)
    [alert] = alerts(d)
    assert alert["alert_id"] == f"{OPP}:lines:1" and alert["state"] == "OPEN"
    assert alert["kind"] == "LINE_MISMATCH" and alert["severity"] == "MEDIUM"
    assert alert["suggested_owner"] == "fulfilment"
    return alert


def test_shipping_more_than_ordered_is_a_line_mismatch_even_before_the_shipment_is_complete():
    alert = line_alert(accepted_deal(), [ship("l1", "3")], complete=False)
    assert alert["observed"] == "l1: ordered 2, shipped 3"
    assert Decimal(alert["amount_at_risk"]) == Decimal("100")  # one extra unit at 100.00


def test_shipping_a_line_that_is_not_on_the_order_is_a_line_mismatch():
    alert = line_alert(accepted_deal(), [ship("l9", "1", sku="SKU-Z")], complete=False)
    assert alert["observed"] == "l9: shipped 1 but not on the order"


def test_a_complete_shipment_short_of_the_ordered_quantity_is_a_line_mismatch():
    alert = line_alert(accepted_deal(), [ship("l1", "1"), ship("l2", "1")], complete=True)
    assert alert["observed"] == "l1: ordered 2, shipped 1"
    assert Decimal(alert["amount_at_risk"]) == Decimal("100")


def test_a_complete_shipment_that_leaves_out_a_line_is_a_line_mismatch():
    alert = line_alert(accepted_deal(), [ship("l1", "2")], complete=True)
    assert alert["observed"] == "l2: ordered 1, none shipped"
    assert Decimal(alert["amount_at_risk"]) == Decimal("50")


def test_partial_shipments_adding_up_to_the_order_are_parity_and_a_resent_shipment_is_not_counted_twice():
    deal = accepted_deal()
    first = deal.erp(ErpKind.SHIPPED, at(days=1), shipment_id="SH-A", lines=[ship("l1", "1")], complete=False)
    resent = deal.erp(ErpKind.SHIPPED, at(days=1, hours=1), shipment_id="SH-A", lines=[ship("l1", "1")], complete=False)
    last = deal.erp(ErpKind.SHIPPED, at(days=2), shipment_id="SH-B", lines=[ship("l1", "1"), ship("l2", "1")])
    assert resent.outcome is Outcome.APPLIED  # a new event id, but the shipment id is known
    assert alerts(deal.outputs) == []
    assert deal.state.erp.shipped == {"l1": Decimal("2"), "l2": Decimal("1")}
    assert [statuses(updates(d)[0])[1] for d in (first, resent, last)] == [
        "PARTIALLY_SHIPPED",
        "PARTIALLY_SHIPPED",
        "SHIPPED",
    ]


def test_a_line_mismatch_alert_with_erp_scaled_quantities_can_be_encoded():
    """Regression: ``abs(ordered - shipped) * unit_price`` has 4-6 decimal places (ERP quantities are
    decimal(18,4), CRM prices scale 2). ``DriftAlert.amount_at_risk`` is decimal(18,2): the pydantic model
    accepts "100.0000" but fastavro refuses to encode it, so the agent's ``prepare`` raised and the
    shipment event was dead-lettered. The pydantic check alone does not catch this: encode it too."""
    deal = accepted_deal()
    event = deal.event(ErpKind.SHIPPED, at(days=1), lines=[ship("l1", "3.0000")], complete=False)
    d = deal.feed(event, at(days=1), check=False)
    [alert] = alerts(d)
    assert alert["kind"] == "LINE_MISMATCH" and Decimal(alert["amount_at_risk"]) == Decimal("100")
    assert contract_problems(d.outputs) == [], f"amount_at_risk {alert['amount_at_risk']!r} cannot be encoded"


# --- lifecycle gaps ---------------------------------------------------------------------------


def test_an_invoice_before_the_acceptance_is_a_gap_that_the_acceptance_closes():
    deal = Deal()
    early = deal.erp(ErpKind.INVOICED, at(minutes=5))
    [alert] = alerts(early)
    assert alert["alert_id"] == f"{OPP}:gap:not-accepted:1" and alert["kind"] == "LIFECYCLE_GAP"
    assert alert["severity"] == "HIGH" and alert["expected"] == "OrderAccepted first"
    assert alert["amount_at_risk"] == "250.00"
    assert statuses(updates(early)[0])[0] == "INVOICED"
    accepted = deal.erp(ErpKind.ACCEPTED, at(minutes=8))
    assert resolved(accepted) == [alert["alert_id"]] and opened(accepted) == []
    [audit] = alert_audits(accepted)
    assert audit["audit_id"] == f"audit:{OPP}:gap:not-accepted:1:resolved" and audit["action"] == "ALERT_RESOLVED"
    assert deal.state.alerts == {}


def _shipped_milestone_deal(policy: Policy | None = None) -> Deal:
    deal = Deal(policy, billing_schedule="MILESTONE")
    deal.erp(ErpKind.ACCEPTED, at(minutes=1))
    deal.erp(ErpKind.SHIPPED, at(minutes=2))
    return deal


def test_milestones_reach_the_crm_and_an_invoice_after_the_acceptance_is_parity():
    deal = _shipped_milestone_deal()
    activated = deal.erp(ErpKind.ACTIVATED, at(minutes=3))
    assert updates(activated)[0]["service_activated_at"] == at(minutes=3).isoformat()
    assert updates(activated)[0]["customer_accepted_at"] is None
    accepted = deal.erp(ErpKind.CUSTOMER_ACCEPTED, at(minutes=4))
    assert updates(accepted)[0]["customer_accepted_at"] == at(minutes=4).isoformat()
    assert alerts(deal.erp(ErpKind.INVOICED, at(minutes=5))) == []
    assert deal.state.erp.customer_accepted_at_ms == ms(at(minutes=4))


def test_an_invoice_before_the_customer_accepts_a_milestone_billed_order_is_a_gap_until_the_acceptance():
    deal = _shipped_milestone_deal()
    early = deal.erp(ErpKind.INVOICED, at(minutes=3))
    [alert] = alerts(early)
    assert alert["alert_id"] == f"{OPP}:gap:invoiced-before-acceptance:1" and alert["kind"] == "LIFECYCLE_GAP"
    assert alert["amount_at_risk"] == "250.00" and alert["suggested_owner"] == "billing"
    assert "MILESTONE" in alert["detail"]
    again = deal.erp(ErpKind.CUSTOMER_ACCEPTED, at(minutes=4), event_id="acc-1")
    assert resolved(again) == [alert["alert_id"]]
    assert deal.feed(deal.event(ErpKind.CUSTOMER_ACCEPTED, at(minutes=5), event_id="acc-1"), at(minutes=5)).outcome is (
        Outcome.DUPLICATE
    )


def test_only_the_configured_billing_schedules_wait_for_the_acceptance():
    deal = _shipped_milestone_deal(Policy(slas=Slas(acceptance_billing=frozenset({"QUARTERLY"}))))
    assert alerts(deal.erp(ErpKind.INVOICED, at(minutes=3))) == []
    upfront = Deal()
    upfront.erp(ErpKind.ACCEPTED, at(minutes=1))
    assert alerts(upfront.erp(ErpKind.INVOICED, at(minutes=3))) == []


def test_paying_more_than_was_invoiced_is_a_gap():
    deal = accepted_deal()
    deal.erp(ErpKind.SHIPPED, at(days=1))
    deal.erp(ErpKind.INVOICED, at(days=2))
    d = deal.erp(ErpKind.PAID, at(days=3), amount="300.00")
    [alert] = alerts(d)
    assert alert["alert_id"] == f"{OPP}:gap:overpaid:1" and alert["kind"] == "LIFECYCLE_GAP"
    assert alert["observed"] == "paid 300.00" and alert["expected"] == "paid <= invoiced 250.00"
    assert alert["amount_at_risk"] == "50.00" and alert["currency"] == "EUR"
    assert alert["suggested_owner"] == "collections"
    assert statuses(updates(d)[0]) == ("PAID", "SHIPPED", "INVOICED", "PAID")


def test_a_shipment_on_an_order_cancelled_because_the_deal_was_reopened_is_a_critical_gap():
    deal = accepted_deal()
    reopen = deal.header(at(hours=1), stage="NEGOTIATION")
    [cancel] = [record(o)["command"] for o in reopen.outputs if route(o).topic == "erp.commands.sales-order"]
    assert cancel["-type"].endswith("CancelSalesOrder") and cancel["reason"] == "DEAL_REOPENED"
    assert deal.state.order is None and len(deal.state.cancelled_orders) == 1
    d = deal.erp(ErpKind.SHIPPED, at(days=1))
    [alert] = alerts(d)
    assert alert["alert_id"] == f"{OPP}:gap:cancelled:1" and alert["kind"] == "LIFECYCLE_GAP"
    assert alert["severity"] == "CRITICAL" and alert["observed"] == "1 shipment(s), 0 invoice(s)"
    assert alert["suggested_owner"] == "order-management"
    assert alert["amount_at_risk"] is None and alert["currency"] == "EUR"  # nothing invoiced yet
    assert statuses(updates(d)[0])[0] == "CANCELLED"


def test_erp_events_for_a_deal_the_service_never_ordered_are_a_gap():
    deal = Deal(close=False)
    d = deal.erp(ErpKind.ACCEPTED, at(minutes=5))
    [alert] = alerts(d)
    assert alert["alert_id"] == f"{OPP}:gap:unknown-order:1" and alert["kind"] == "LIFECYCLE_GAP"
    assert alert["amount_at_risk"] == "250.00" and alert["customer_id"] is None
    assert updates(d)[0]["account_id"] is None


# --- alert lifecycle: one open alert per finding ----------------------------------------------


def test_an_open_alert_is_not_reopened_and_a_recurrence_after_resolution_gets_the_next_number():
    deal = accepted_deal()
    deal.erp(ErpKind.SHIPPED, at(days=1))
    deal.erp(ErpKind.INVOICED, at(days=2), amount="200.00", invoice_number="INV-1", due_date="2026-12-31")
    first = deal.erp(ErpKind.PAID, at(days=3), amount="250.00")  # 50.00 more than invoiced
    assert opened(first) == [f"{OPP}:gap:overpaid:1"]
    still = deal.erp(ErpKind.HOLD_PLACED, at(days=4))
    assert alerts(still) == [] and deal.recheck(at(days=5)).outputs == []  # dedup while open

    settled = deal.erp(ErpKind.INVOICED, at(days=6), invoice_number="INV-2", amount="50.00")
    # 250.00 invoiced in all: paid no longer exceeds it, and the invoices now match the order as well
    assert resolved(settled) == [f"{OPP}:amount:invoiced:1", f"{OPP}:gap:overpaid:1"] and opened(settled) == []

    again = deal.erp(ErpKind.PAID, at(days=7), amount="10.00")
    assert opened(again) == [f"{OPP}:gap:overpaid:2"]
    assert [a["audit_id"] for a in alert_audits(again)] == [f"audit:{OPP}:gap:overpaid:2:open"]
    assert deal.state.alert_seq["gap:overpaid"] == 2


# --- deadlines --------------------------------------------------------------------------------


def test_next_check_is_the_earliest_deadline_still_ahead():
    deal = Deal()
    slas = deal.policy.slas
    assert next_check_ms(deal.state, ms(at(minutes=1)), slas) == ms(at(minutes=15))  # acceptance
    deal.erp(ErpKind.ACCEPTED, at(minutes=5))
    ship_by = at(days=7, minutes=5)
    assert next_check_ms(deal.state, ms(at(minutes=5)), slas) == ms(ship_by)
    # invoiced up front (before shipping), due in two days: payment is now the earliest deadline
    deal.erp(ErpKind.INVOICED, at(days=1), due_date="2026-11-29")
    pay_by = dt.datetime(2026, 11, 29, tzinfo=dt.UTC) + slas.payment_grace
    assert set(expectations(deal.state, slas)) == {"missing:shipped", "missing:paid"}
    assert next_check_ms(deal.state, ms(at(days=1)), slas) == ms(pay_by) < ms(ship_by)
    assert next_check_ms(deal.state, ms(pay_by), slas) == ms(ship_by)  # a deadline reached is not ahead
    assert next_check_ms(deal.state, ms(ship_by), slas) is None


def test_without_a_due_date_payment_is_expected_within_the_payment_sla_of_the_invoice():
    deal = accepted_deal()
    deal.erp(ErpKind.SHIPPED, at(days=1))
    assert next_check_ms(deal.state, ms(at(days=1)), deal.policy.slas) == ms(at(days=3))  # invoice SLA: 2 days
    deal.erp(ErpKind.INVOICED, at(days=2))
    assert next_check_ms(deal.state, ms(at(days=2)), deal.policy.slas) == ms(at(days=32))


def test_there_is_nothing_to_wait_for_without_an_order_or_after_a_rejection():
    deal = Deal()
    assert next_check_ms(DealState(opportunity_id=OPP), ms(at()), deal.policy.slas) is None
    deal.erp(ErpKind.REJECTED, at(minutes=5))
    assert expectations(deal.state, deal.policy.slas) == {}
    assert next_check_ms(deal.state, ms(at(minutes=5)), deal.policy.slas) is None


def test_a_missing_event_is_a_finding_from_its_deadline_on():
    deal = accepted_deal()
    state, policy = deal.state, deal.policy
    deadline = ms(at(days=7, minutes=5))
    assert findings(state, deadline - 1, policy.slas, policy.amount_tolerance) == {}
    found = findings(state, deadline + 3_600_000, policy.slas, policy.amount_tolerance)
    assert list(found) == ["missing:shipped"]
    f = found["missing:shipped"]
    assert f.kind is DriftKind.MISSING_EVENT and f.expected == "OrderShipped (complete)" and f.owner == "fulfilment"
    assert f.detail == "OrderShipped (complete) has not arrived; 1:00:00 past its SLA"
    assert f.amount_at_risk == Decimal("250.00") and f.currency == "EUR"


def test_the_shipping_sla_alert_opens_on_the_recheck_and_the_complete_shipment_resolves_it():
    deal = accepted_deal()
    late = deal.recheck(at(days=7, minutes=5))
    assert opened(late) == [f"{OPP}:missing:shipped:1"]
    shipped = deal.erp(ErpKind.SHIPPED, at(days=8))
    assert resolved(shipped) == [f"{OPP}:missing:shipped:1"] and opened(shipped) == []


# --- the ERP view: any arrival order, the same order ------------------------------------------


def test_the_erp_view_is_the_same_whatever_order_its_events_arrive_in():
    deal = Deal(close=False)
    events = [
        deal.event(ErpKind.ACCEPTED, at(minutes=5)),
        deal.event(ErpKind.SHIPPED, at(days=1), lines=[ship("l1", "1")], complete=False),
        deal.event(ErpKind.SHIPPED, at(days=2), lines=[ship("l1", "1"), ship("l2", "1")], complete=True),
        deal.event(ErpKind.INVOICED, at(days=3), due_date="2026-12-31"),
        deal.event(ErpKind.PAID, at(days=9)),
    ]

    def folded(sequence) -> tuple:
        view = ErpView()
        for event in sequence:
            apply(view, event)
        return (
            order_status(view, cancelled=False),
            fulfilment_status(view),
            invoice_status(view),
            payment_status(view),
            tuple(sorted(view.shipped.items())),
            view.invoiced,
            view.paid,
            view.accepted_at_ms,
            view.fully_shipped_at_ms,
            view.due_date,
            view.order_number,
        )

    outcomes = {folded(p) for p in map(list, itertools.permutations(events))}
    assert len(outcomes) == 1
    [outcome] = outcomes
    assert outcome[:4] == ("PAID", "SHIPPED", "INVOICED", "PAID")
    assert outcome[4] == (("l1", Decimal("2")), ("l2", Decimal("1")))


def test_a_rejection_after_an_acceptance_does_not_undo_it_and_a_cancelled_order_reads_cancelled():
    deal = Deal(close=False)
    accept = deal.event(ErpKind.ACCEPTED, at(minutes=5))
    reject = deal.event(ErpKind.REJECTED, at(minutes=6))
    for sequence in ([accept, reject], [reject, accept]):
        view = ErpView()
        for event in sequence:
            apply(view, event)
        assert view.rejected is None and order_status(view, cancelled=False) == "ACCEPTED"
        assert order_status(view, cancelled=True) == "CANCELLED"
    assert order_status(ErpView(), cancelled=False) == "PENDING"
