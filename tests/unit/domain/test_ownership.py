"""Field ownership at run time: CRM edits to ERP-owned account fields and ERP answers that disagree
with CRM-owned ones become OWNERSHIP_CONFLICT alerts; a CRM edit is restored where the rules say so."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.contracts import account_owners
from app.contracts.models import model
from app.domain.changes import Lineage
from app.domain.customer_links import CustomerEvent, CustomerEventKind, apply
from app.domain.feedback.lifecycle import ErpKind
from app.domain.orders import retention
from app.domain.orders.decide import Outcome
from app.domain.orders.validation import Policy
from app.domain.outputs import CrmAccountUpdate, DriftAlert
from app.domain.ownership import Ownership, load
from app.flows import accounts as account_flow
from app.flows import customer_links as link_flow
from app.settings import REPO_ROOT
from app.sim import debezium as sim
from tests.support.deals import NOW, FakeReferences
from tests.support.driver import apply_step
from tests.support.erp import OPP, Deal, at, updates
from tests.unit.domain.test_customers import INTEGRATION_USER, account_change, account_row

RULES = REPO_ROOT / "app" / "rules" / "ownership.toml"
OWNERSHIP = Ownership(load(RULES), *account_owners())
LINK = apply(
    None,
    CustomerEvent(
        event_id="e-1",
        account_id="001-1",
        kind=CustomerEventKind.UPDATED,
        customer_number="C-1001",
        credit_limit=Decimal("50000.00"),
        currency="EUR",
        payment_terms="NET30",
        occurred_at_ms=1_000,
    ),
)
REFS = FakeReferences(links={"001-1": LINK})
ALERT = "io.crmerpsync.sync.DriftAlert"


def crm_step(tables, row, lsns, ownership=OWNERSHIP):
    change, _ = account_change(row, lsns=lsns)
    step = account_flow.step(tables, change, None, REFS, Lineage("crm.public.account", 0, 1, 1, None),
                             INTEGRATION_USER, NOW, ownership)  # fmt: skip
    return apply_step(tables, step)


def alerts(step) -> list[dict]:
    return [o.value for o in step.outputs if isinstance(o, DriftAlert)]


def test_the_owners_are_read_from_the_contracts():
    erp, crm = account_owners()
    assert {"erp_customer_number", "credit_limit", "credit_hold", "erp_customer_status"} <= erp
    assert {"payment_terms", "name", "tax_code"} <= crm and "erp_customer_number" not in crm


def test_a_crm_edit_of_the_customer_number_is_an_alert_with_both_values_and_is_restored():
    tables, lsns = {"customer-views": {}}, sim.Lsn()
    crm_step(tables, account_row(), lsns)  # the CRM shows the ERP's number: no conflict
    step = crm_step(tables, account_row(erp_customer_number="C-9999"), lsns)
    [alert] = alerts(step)
    assert (alert["kind"], alert["state"], alert["expected"], alert["observed"]) == (
        "OWNERSHIP_CONFLICT", "OPEN", "C-1001", "C-9999")  # fmt: skip
    assert alert["alert_id"] == "001-1:owner:erp_customer_number:1" and "005-sales" in alert["detail"]
    model(ALERT).model_validate(alert)
    [restore] = [o.value for o in step.outputs if isinstance(o, CrmAccountUpdate)]
    assert restore["erp_customer_number"] == "C-1001" and restore["envelope"]["command_id"].startswith("001-1:restore:")
    # the restore comes back through CDC as the integration user: the alert resolves, nothing is restored again
    back = crm_step(tables, account_row(last_modified_by_id=INTEGRATION_USER), lsns)
    [resolved] = alerts(back)
    assert (resolved["alert_id"], resolved["state"]) == ("001-1:owner:erp_customer_number:1", "RESOLVED")
    assert not [o for o in back.outputs if isinstance(o, CrmAccountUpdate)]


def test_a_field_the_rules_only_alert_on_is_not_restored(tmp_path):
    rules = tmp_path / "ownership.toml"
    rules.write_text('version = 1\ndefault = "alert"\n')
    tables, lsns = {"customer-views": {}}, sim.Lsn()
    step = crm_step(tables, account_row(erp_customer_number="C-9999"), lsns, Ownership(load(rules), *account_owners()))
    assert [a["state"] for a in alerts(step)] == ["OPEN"]
    assert not [o for o in step.outputs if isinstance(o, CrmAccountUpdate)]
    again = crm_step(tables, account_row(erp_customer_number="C-9999", phone="+1"), lsns)
    assert alerts(again) == []  # still open: not opened twice


def test_the_integration_users_own_change_opens_nothing_and_an_unlinked_account_has_no_conflict():
    tables, lsns = {"customer-views": {}}, sim.Lsn()
    mine = crm_step(tables, account_row(erp_customer_number="C-9999", last_modified_by_id=INTEGRATION_USER), lsns)
    assert alerts(mine) == []
    change, _ = account_change(account_row(erp_customer_number="C-9999"), lsns=lsns)
    step = account_flow.step({"customer-views": {}}, change, None, FakeReferences(), Lineage("t", 0, 1, 1, None),
                             INTEGRATION_USER, NOW, OWNERSHIP)  # fmt: skip
    assert alerts(step) == []


def test_an_erp_answer_that_disagrees_with_the_crms_payment_terms_is_an_alert_and_goes_no_further():
    _, account = account_change(account_row(payment_terms="NET60"))
    tables = {"customer-links": {}}
    event = CustomerEvent(event_id="e-2", account_id="001-1", kind=CustomerEventKind.UPDATED, customer_number="C-1001",
                          payment_terms="NET30", occurred_at_ms=2_000)  # fmt: skip
    step = link_flow.step(tables, event, Lineage("erp.events.customer", 0, 1, 1, None), NOW, account, OWNERSHIP)
    [alert] = alerts(step)
    assert (alert["alert_id"], alert["expected"], alert["observed"]) == (
        "001-1:owner:payment_terms:1",
        "NET60",
        "NET30",
    )
    assert alert["suggested_owner"] == "revops"
    [update] = [o.value for o in step.outputs if isinstance(o, CrmAccountUpdate)]
    assert "payment_terms" not in update  # the CRM-owned field is never written from ERP data


@pytest.mark.parametrize("bad", ['default = "ignore"', '[crm_edit]\ncredit_limit = "overwrite"'])
def test_a_rule_file_with_an_unknown_action_is_refused(tmp_path, bad):
    rules = tmp_path / "ownership.toml"
    rules.write_text(bad + "\n")
    with pytest.raises(ValueError, match="restore"):
        load(rules)


# --- the opportunity side: ERP-owned fields the CRM shows on a deal ----------------------------

OWNED = frozenset({"erp_order_number", "order_status", "fulfilment_status", "invoice_status", "payment_status"})
DEAL_POLICY = Policy(erp_owned=OWNED, restore=OWNED - {"payment_status"})


def accepted_deal() -> Deal:
    deal = Deal(DEAL_POLICY)
    deal.erp(ErpKind.ACCEPTED, at(minutes=5))
    return deal


def owner_alerts(decision) -> list[tuple[str, str, str | None, str | None]]:
    return [(a["alert_id"], a["state"], a["expected"], a["observed"]) for a in alerts(decision)
            if a["kind"] == "OWNERSHIP_CONFLICT"]  # fmt: skip


def test_a_crm_user_editing_an_erp_owned_deal_field_raises_a_conflict_and_the_erp_value_is_restored():
    deal = accepted_deal()
    edit = deal.header(at(minutes=10), shown_order_status="CANCELLED", shown_erp_order_number="SO-1")
    assert owner_alerts(edit) == [(f"{OPP}:owner:order_status:1", "OPEN", "ACCEPTED", "CANCELLED")]
    [restore] = updates(edit)
    assert restore["envelope"]["command_id"].startswith(f"{OPP}:restore:")
    assert (restore["order_status"], restore["erp_order_number"]) == ("ACCEPTED", "SO-1")
    [alert] = [a for a in alerts(edit) if a["kind"] == "OWNERSHIP_CONFLICT"]
    assert (alert["correlation_id"], alert["customer_id"], alert["suggested_owner"]) == (OPP, "acc-1", "finance-ops")
    # the write-back returns as the integration user: both sides agree, the alert resolves, nothing else
    back = deal.header(at(minutes=11), shown_order_status="ACCEPTED", shown_erp_order_number="SO-1",
                       last_modified_by=DEAL_POLICY.integration_user)  # fmt: skip
    assert back.outcome is Outcome.LOOP_SUPPRESSED
    assert owner_alerts(back) == [(f"{OPP}:owner:order_status:1", "RESOLVED", None, None)]
    assert updates(back) == [] and deal.state.owner_alerts.open == {}


def test_a_field_the_rules_only_alert_on_is_not_restored_and_keeps_the_deal_from_retiring():
    deal = accepted_deal()
    edit = deal.header(at(minutes=10), shown_payment_status="PAID")
    assert owner_alerts(edit) == [(f"{OPP}:owner:payment_status:1", "OPEN", "UNPAID", "PAID")]
    assert updates(edit) == [] and deal.state.owner_alerts.open
    assert not retention.settled(deal.state, DEAL_POLICY)


def test_a_change_that_carries_a_value_the_write_back_has_not_reached_yet_is_no_edit():
    deal = Deal(DEAL_POLICY)
    deal.header(at(minutes=1), shown_order_status="PENDING")  # as the CRM showed it before the ERP spoke
    deal.erp(ErpKind.ACCEPTED, at(minutes=5))
    unrelated = deal.header(at(minutes=6), shown_order_status="PENDING", name="renamed")
    assert owner_alerts(unrelated) == [] and updates(unrelated) == []


def test_without_an_erp_view_or_owned_fields_nothing_is_judged():
    deal = Deal(DEAL_POLICY)
    assert owner_alerts(deal.header(at(minutes=1), shown_order_status="SHIPPED")) == []  # the ERP has not spoken
    plain = Deal()
    plain.erp(ErpKind.ACCEPTED, at(minutes=5))
    assert owner_alerts(plain.header(at(minutes=6), shown_order_status="SHIPPED")) == []  # Policy() judges none
