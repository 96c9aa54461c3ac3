"""ERP events flowing back, without Kafka: CRM status updates, rejections, duplicates, auto-heal of a lost create."""

from __future__ import annotations

from app.domain.feedback.fold import CRM_UPDATE_IDENTITY, CRM_WRITABLE
from app.domain.feedback.lifecycle import ErpKind, Slas
from app.domain.orders.decide import Outcome
from app.domain.orders.validation import Policy
from app.domain.outputs import JSON
from app.domain.parity.rules import next_check_ms
from app.engine.routes import headers as wire_headers
from app.engine.routes import record, route
from tests.support.deals import NOW, references
from tests.support.erp import (
    OPP,
    Deal,
    alert_audits,
    alerts,
    at,
    audits,
    commands,
    contract_problems,
    ms,
    ship,
    statuses,
    updates,
)

# --- the happy path: the CRM learns each status, nothing drifts --------------------------------


def test_accepted_shipped_invoiced_paid_tells_the_crm_each_status_and_raises_no_alert():
    deal = Deal()
    steps = [
        deal.erp(ErpKind.ACCEPTED, at(minutes=5)),
        deal.erp(ErpKind.SHIPPED, at(days=2), lines=[ship("l1", "2"), ship("l2", "1")], complete=True),
        deal.erp(ErpKind.INVOICED, at(days=3), due_date="2026-12-30"),
        deal.erp(ErpKind.PAID, at(days=20)),
    ]
    assert all(d.outcome is Outcome.APPLIED for d in steps)
    assert [statuses(u) for d in steps for u in updates(d)] == [
        ("ACCEPTED", "NOT_SHIPPED", "NOT_INVOICED", "UNPAID"),
        ("SHIPPED", "SHIPPED", "NOT_INVOICED", "UNPAID"),
        ("INVOICED", "SHIPPED", "INVOICED", "UNPAID"),
        ("PAID", "SHIPPED", "INVOICED", "PAID"),
    ]
    assert alerts(deal.outputs) == []
    last = updates(steps[-1])[0]
    assert last["erp_order_number"] == "SO-1" and last["currency"] == "EUR"
    assert last["amount_invoiced"] == "250.00" and last["amount_paid"] == "250.00"
    assert last["credit_hold"] is False and last["disputed"] is False
    assert next_check_ms(deal.state, ms(at(days=20)), deal.policy.slas) is None  # nothing left to wait for


def test_each_crm_update_is_an_idempotent_command_caused_by_its_erp_event():
    deal = Deal()
    event = deal.event(ErpKind.ACCEPTED, at(minutes=5))
    d = deal.feed(event, at(minutes=5))
    [out] = [o for o in d.outputs if route(o).topic == "crm.commands.update"]
    envelope = out.value["envelope"]
    assert out.key == OPP and out.value["opportunity_id"] == OPP and out.value["account_id"] == "acc-1"
    assert envelope["command_id"] == f"{OPP}:crm-update:{event.event_id}"
    assert envelope["causation_ids"] == [event.event_id] and envelope["correlation_id"] == OPP
    assert envelope["lineage"]["source_topic"] == "erp.events.sales-order"
    assert envelope["lineage"]["source_offset"] == event.lineage.offset


def test_partial_shipment_partial_payment_credit_hold_and_dispute_reach_the_crm():
    deal = Deal()
    deal.erp(ErpKind.ACCEPTED, at(minutes=5))
    partial = deal.erp(ErpKind.SHIPPED, at(days=1), lines=[ship("l1", "1")], complete=False)
    assert statuses(updates(partial)[0])[:2] == ("PARTIALLY_SHIPPED", "PARTIALLY_SHIPPED")
    deal.erp(ErpKind.SHIPPED, at(days=2), lines=[ship("l1", "1"), ship("l2", "1")], complete=True)
    deal.erp(ErpKind.INVOICED, at(days=3))
    some = deal.erp(ErpKind.PAID, at(days=10), amount="100.00")
    assert statuses(updates(some)[0]) == ("INVOICED", "SHIPPED", "INVOICED", "PARTIALLY_PAID")
    assert updates(some)[0]["amount_paid"] == "100.00" and updates(some)[0]["amount_invoiced"] == "250.00"

    hold = updates(deal.erp(ErpKind.HOLD_PLACED, at(days=11)))[0]
    assert hold["credit_hold"] is True
    released = updates(deal.erp(ErpKind.HOLD_RELEASED, at(days=12)))[0]
    assert released["credit_hold"] is False
    disputed = updates(deal.erp(ErpKind.DISPUTED, at(days=13)))[0]
    assert disputed["disputed"] is True and disputed["invoice_status"] == "DISPUTED"
    assert alerts(deal.outputs) == []


def test_crm_updates_carry_only_erp_owned_fields():
    deal = Deal()
    for kind, when, fields in [
        (ErpKind.ACCEPTED, at(minutes=5), {}),
        (ErpKind.SHIPPED, at(days=1), {}),
        (ErpKind.INVOICED, at(days=2), {"due_date": "2026-12-29"}),
        (ErpKind.HOLD_PLACED, at(days=3), {}),
        (ErpKind.DISPUTED, at(days=4), {}),
        (ErpKind.PAID, at(days=5), {"amount": "200.00"}),
    ]:
        deal.erp(kind, when, **fields)
    sent = updates(deal.outputs)
    assert len(sent) == 6
    for value in sent:
        assert set(value) <= CRM_WRITABLE | CRM_UPDATE_IDENTITY, set(value) - (CRM_WRITABLE | CRM_UPDATE_IDENTITY)
        assert "ACME expansion" not in repr(value)  # commercial fields (name, amount, stage, lines) stay CRM-owned
        assert not {"amount", "stage", "name", "lines", "close_date", "payment_terms"} & set(value)


# --- duplicates and redeliveries --------------------------------------------------------------


def test_the_same_event_id_twice_is_a_duplicate_with_no_outputs():
    deal = Deal()
    deal.erp(ErpKind.ACCEPTED, at(minutes=5))
    deal.erp(ErpKind.SHIPPED, at(days=1))
    deal.erp(ErpKind.INVOICED, at(days=2))
    payment = deal.event(ErpKind.PAID, at(days=3), amount="100.00")
    deal.feed(payment, at(days=3))
    again = deal.feed(payment, at(days=4))  # the ERP sent it again: a new message, the same event id
    assert again.outcome is Outcome.DUPLICATE and again.outputs == []
    assert deal.state.erp.paid == 100 and len(deal.state.erp.events) == 4


# --- rejection --------------------------------------------------------------------------------


def test_an_erp_rejection_raises_an_erp_rejected_exception_and_no_missing_acceptance_alert():
    deal = Deal()
    reject = deal.event(ErpKind.REJECTED, at(minutes=3), reason_text="credit limit exceeded", retryable=True)
    d = deal.feed(reject, at(minutes=3))
    [exc] = [o for o in d.outputs if route(o).topic == "sync.exceptions"]
    v = exc.value
    assert exc.key == OPP and v["exception_id"] == f"{OPP}:ERP_REJECTED:{reject.event_id}"
    assert v["reason_code"] == "ERP_REJECTED" and v["status"] == "OPEN" and v["correlation_id"] == OPP
    assert v["amount_at_risk"] == "250.00" and v["currency"] == "EUR"
    assert v["detail"] == "ERP CREDIT_LIMIT: credit limit exceeded (retryable: true)"
    assert v["lineage"]["source_topic"] == "erp.events.sales-order"
    assert statuses(updates(d)[0])[0] == "REJECTED"
    assert deal.state.open_exceptions == {"ERP_REJECTED": v["exception_id"]}
    # the exception covers it: no re-issue of the create, no missing-acceptance alert, no deadline
    later = deal.recheck(at(hours=2))
    assert later.outputs == []
    assert next_check_ms(deal.state, ms(at(hours=2)), deal.policy.slas) is None


def test_a_later_acceptance_resolves_the_rejection_exception():
    deal = Deal()
    d = deal.erp(ErpKind.REJECTED, at(minutes=3))
    [raised] = [record(o) for o in d.outputs if route(o).topic == "sync.exceptions"]
    second = deal.erp(ErpKind.REJECTED, at(minutes=4), reason_code="BLOCKED")
    assert [route(o).topic for o in second.outputs] == [
        "crm.commands.update",
        "sync.audit",
    ]  # one exception per rejection
    accepted = deal.erp(ErpKind.ACCEPTED, at(minutes=10))
    [res] = [o for o in accepted.outputs if route(o).topic == "sync.exception-resolutions"]
    assert res.key == raised["exception_id"] and res.value["exception_id"] == raised["exception_id"]
    assert res.value["resolution"] == "SUPERSEDED" and res.value["resolved_at"] == at(minutes=10).isoformat()
    assert statuses(updates(accepted)[0])[0] == "ACCEPTED"
    assert deal.state.open_exceptions == {} and alerts(deal.outputs) == []


def test_an_unrelated_crm_edit_does_not_resolve_an_open_erp_rejection():
    """Regression: ``_settle_exceptions`` used to settle *every* open exception on any CRM change to the
    closed-won deal, the ERP's rejection included, although nothing was sent to the ERP."""
    deal = Deal()
    deal.erp(ErpKind.REJECTED, at(minutes=3))
    renamed = deal.header(at(minutes=10), name="ACME expansion (renamed)")  # no amend: the order is unchanged
    assert commands(renamed) == []
    assert deal.state.erp.rejected == "CREDIT_LIMIT"
    resolutions = [record(o) for o in renamed.outputs if route(o).topic == "sync.exception-resolutions"]
    assert resolutions == [], f"the ERP_REJECTED exception was resolved by a CRM rename: {resolutions}"
    assert "ERP_REJECTED" in deal.state.open_exceptions


def test_a_rejection_exception_ends_with_its_order_and_the_next_orders_rejection_raises_its_own():
    """Regression: while ERP rejections were exempt from ``_settle_exceptions`` everywhere, cancelling the
    rejected order left its exception open for good, and after a re-close that stale exception swallowed
    the rejection of the *new* order (``feedback._rejection`` saw one open and raised nothing)."""
    deal = Deal()
    first = deal.erp(ErpKind.REJECTED, at(minutes=3))
    [old] = [o.value["exception_id"] for o in first.outputs if route(o).topic == "sync.exceptions"]
    reopen = deal.header(at(hours=1), stage="NEGOTIATION")  # cancels the rejected order
    settled = [o.value["exception_id"] for o in reopen.outputs if route(o).topic == "sync.exception-resolutions"]
    assert settled == [old], f"the cancelled order's rejection exception stays open: {deal.state.open_exceptions}"

    deal.header(at(hours=2))  # re-closed: a new order
    again = deal.erp(ErpKind.REJECTED, at(hours=2, minutes=5), reason_code="BLOCKED")
    raised = [o.value["exception_id"] for o in again.outputs if route(o).topic == "sync.exceptions"]
    assert len(raised) == 1 and raised != [old], "the new order's rejection raised no exception of its own"


# --- a create the ERP never acknowledged: auto-heal, then alert ------------------------------


def test_before_the_acceptance_sla_a_recheck_does_nothing():
    deal = Deal()
    assert next_check_ms(deal.state, ms(NOW), deal.policy.slas) == ms(at(minutes=15))
    d = deal.recheck(at(minutes=14, seconds=59))
    assert d.outcome is Outcome.IGNORED and d.outputs == []


def test_a_recheck_of_a_deal_with_an_order_only_judges_parity():
    deal = Deal()
    deal.refs = references(linked=False)  # would park a deal still being decided
    d = deal.recheck(at(minutes=5))
    assert d.outcome is Outcome.IGNORED and d.outputs == []
    assert deal.state.open_exceptions == {} and deal.state.order is not None


def test_after_the_acceptance_sla_the_same_create_is_reissued_once_then_the_missing_acceptance_alerts():
    deal = Deal()
    [original] = commands(deal.creation)

    healed = deal.recheck(at(minutes=15))
    [again] = commands(healed)
    assert again["envelope"]["command_id"] == original["envelope"]["command_id"]
    assert again["command"] == original["command"]  # the ERP upserts by command id: the very same create
    [audit] = audits(healed)
    assert audit["audit_id"] == f"audit:{original['envelope']['command_id']}:reissued"
    assert audit["action"] == "COMMAND_EMITTED" and audit["detail"] == "re-issued once: no acceptance within its SLA"
    assert alerts(healed) == []
    assert deal.state.order.commanded_at_ms == ms(NOW)  # the original create's time is kept
    assert next_check_ms(deal.state, ms(at(minutes=15)), deal.policy.slas) == ms(at(minutes=30))

    assert deal.recheck(at(minutes=20)).outputs == []  # re-issued once only
    opened = deal.recheck(at(minutes=30))
    assert commands(opened) == []
    [alert] = alerts(opened)
    assert alert["alert_id"] == f"{OPP}:missing:accepted:1" and alert["state"] == "OPEN"
    assert alert["kind"] == "MISSING_EVENT" and alert["severity"] == "HIGH"
    assert alert["expected"] == "OrderAccepted" and alert["observed"] == "nothing"
    assert alert["suggested_owner"] == "order-management" and alert["amount_at_risk"] == "250.00"
    assert alert["correlation_id"] == OPP and alert["customer_id"] == "acc-1"
    assert alert["opened_at"] == at(minutes=30).isoformat() and alert["resolved_at"] is None
    [audit] = audits(opened)
    assert audit["action"] == "ALERT_OPENED" and audit["audit_id"] == f"audit:{OPP}:missing:accepted:1:open"
    assert audit["subject_id"] == alert["alert_id"] and audit["topic"] == "sync.drift-alerts"
    assert deal.recheck(at(minutes=40)).outputs == []  # still open: not alerted again

    late = deal.erp(ErpKind.ACCEPTED, at(minutes=45))
    [resolved] = alerts(late)
    assert resolved["alert_id"] == alert["alert_id"] and resolved["state"] == "RESOLVED"
    assert resolved["opened_at"] == alert["opened_at"] and resolved["resolved_at"] == at(minutes=45).isoformat()
    assert resolved["order_number"] == "SO-1"
    [audit] = alert_audits(late)
    assert audit["action"] == "ALERT_RESOLVED" and audit["causation_ids"] == [deal.state.erp.events[-1].event_id]
    assert deal.state.alerts == {}
    assert len(commands(deal.outputs)) == 2  # the create and its one re-issue


def test_an_acceptance_within_the_sla_leaves_nothing_to_heal():
    deal = Deal()
    deal.erp(ErpKind.ACCEPTED, at(minutes=10))
    d = deal.recheck(at(minutes=20))
    assert d.outputs == []
    assert next_check_ms(deal.state, ms(at(minutes=20)), deal.policy.slas) == ms(at(days=7, minutes=10))


def test_without_auto_heal_the_missing_acceptance_alerts_as_soon_as_the_sla_passes():
    deal = Deal(Policy(slas=Slas(auto_heal=False)))
    assert deal.recheck(at(minutes=14)).outputs == []
    d = deal.recheck(at(minutes=15))
    assert commands(d) == []
    assert [(a["alert_id"], a["state"], a["kind"]) for a in alerts(d)] == [
        (f"{OPP}:missing:accepted:1", "OPEN", "MISSING_EVENT")
    ]


def test_a_deal_that_no_longer_validates_is_alerted_rather_than_resent():
    deal = Deal()
    deal.refs = references(linked=False)
    d = deal.recheck(at(minutes=16))
    assert commands(d) == []
    assert [a["alert_id"] for a in alerts(d)] == [f"{OPP}:missing:accepted:1"]


def test_an_erp_event_after_the_acceptance_sla_does_not_skip_the_auto_heal():
    """Regression: ``on_erp_event`` judges parity without re-issuing. An ERP event other than the acceptance
    (a credit hold) arriving after the acceptance SLA but before the sweep's re-check used to open the
    MISSING_EVENT alert before the auto-heal; the re-issue then "resolved" it although nothing had
    arrived, and it re-opened as ``:2`` (a flapping alert)."""
    deal = Deal()
    hold = deal.erp(ErpKind.HOLD_PLACED, at(minutes=20))
    healed = deal.recheck(at(minutes=21))
    assert len(commands(healed)) == 1  # the auto-heal does happen, one decision later
    flapped = [(a["alert_id"], a["state"]) for a in alerts(hold) + alerts(healed)]
    assert flapped == [], f"missing-acceptance alert opened before the auto-heal and resolved by it: {flapped}"


def test_a_reclosed_deal_gets_a_fresh_acceptance_sla_for_its_new_order():
    """Regression: the ERP view of a cancelled order used to carry over to the deal's next order, so
    re-closing emitted the new create and, in the same decision, a MISSING_EVENT alert measured from
    the old order's re-issue (no auto-heal for the new order)."""
    deal = Deal()
    deal.recheck(at(minutes=15))  # re-issued
    deal.recheck(at(minutes=30))  # alerted
    reopen = deal.header(at(hours=1), stage="NEGOTIATION")
    assert [a["state"] for a in alerts(reopen)] == ["RESOLVED"]
    reclose = deal.header(at(hours=2))
    [create] = commands(reclose)
    assert create["envelope"]["command_id"] != deal.state.cancelled_orders[0]
    assert alerts(reclose) == [], f"alert opened in the very decision that created the order: {alerts(reclose)}"
    assert next_check_ms(deal.state, ms(at(hours=2)), deal.policy.slas) == ms(at(hours=2, minutes=15))


# --- every output is a valid record of its contract -------------------------------------------


def test_every_output_of_the_feedback_flow_is_a_valid_record_of_its_contract():
    deal = Deal()
    deal.recheck(at(minutes=15))  # re-issue: SalesOrderCommand + AuditRecord
    deal.recheck(at(minutes=30))  # DriftAlert (open) + AuditRecord
    deal.erp(ErpKind.REJECTED, at(minutes=31))  # CrmUpdateCommand + ExceptionRecord
    deal.erp(ErpKind.ACCEPTED, at(minutes=40))  # ExceptionResolution + DriftAlert (resolved)
    deal.erp(ErpKind.SHIPPED, at(days=1), lines=[ship("l1", "3"), ship("l9", "1")], complete=False)
    deal.erp(ErpKind.INVOICED, at(days=2), amount="240.00", currency="USD", due_date="2026-12-10")
    deal.erp(ErpKind.PAID, at(days=3), amount="300.00")
    deal.erp(ErpKind.DISPUTED, at(days=4))
    deal.header(at(days=5), stage="CLOSED_LOST")  # cancel
    deal.erp(ErpKind.SHIPPED, at(days=6), lines=[ship("l2", "1")])
    kinds = {
        route(o).contract.rsplit(".", 1)[-1] for o in deal.outputs if route(o).contract != JSON
    }  # registry contracts
    assert kinds == {
        "SalesOrderCommand",
        "AuditRecord",
        "DriftAlert",
        "CrmUpdateCommand",
        "ExceptionRecord",
        "ExceptionResolution",
    }
    assert {a["kind"] for a in alerts(deal.outputs)} == {"MISSING_EVENT", "LINE_MISMATCH", "LIFECYCLE_GAP"}
    assert contract_problems(deal.outputs) == []
    for value in updates(deal.outputs):  # rejected, cancelled, disputed: still only ERP-owned fields
        assert set(value) <= CRM_WRITABLE | CRM_UPDATE_IDENTITY


def test_a_retryable_rejection_sends_the_same_create_through_the_retry_tiers_until_they_run_out():
    from app.domain.orders.validation import Policy

    deal = Deal(policy=Policy(retry_tiers=(("10s", 10.0), ("1m", 60.0))))
    create_id = deal.state.order.create_command_id
    first = deal.erp(ErpKind.REJECTED, at(minutes=3), retryable=True)
    [retry] = [o for o in first.outputs if route(o).topic == "sync.retry.10s"]
    assert retry.value["envelope"]["command_id"] == create_id and retry.key == OPP
    headers = dict(wire_headers(retry))
    assert headers["x-retry-target-catalog"] == "erp.commands.sales-order" and headers["x-retry-attempt"] == "1"
    assert int(headers["x-retry-due-ms"]) == ms(at(minutes=3)) + 10_000
    [exc] = [record(o) for o in first.outputs if route(o).topic == "sync.exceptions"]
    assert exc["status"] == "RETRYING"
    second = deal.erp(ErpKind.REJECTED, at(minutes=4), retryable=True)
    assert [route(o).topic for o in second.outputs if route(o).topic.startswith("sync.retry.")] == ["sync.retry.1m"]
    third = deal.erp(ErpKind.REJECTED, at(minutes=6), retryable=True)
    assert not [o for o in third.outputs if route(o).topic.startswith("sync.retry.")]  # the tiers are used up
    accepted = deal.erp(ErpKind.ACCEPTED, at(minutes=7))
    [resolution] = [record(o) for o in accepted.outputs if route(o).topic == "sync.exception-resolutions"]
    assert resolution["exception_id"] == exc["exception_id"]
