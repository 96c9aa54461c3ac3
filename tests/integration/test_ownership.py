"""Field ownership on the real broker and registry: an ERP answer that disagrees with the CRM's
payment terms, and a CRM user's edit of the ERP's customer number, each raise an OWNERSHIP_CONFLICT
alert with both values; the edit is restored through a CRM update, and the restore coming back
through CDC resolves its alert."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

import pytest

from app.settings import Settings
from app.sim import debezium as dbz
from tests.support.crm import Crm
from tests.support.kafka import Sandbox

pytestmark = pytest.mark.integration

EVENT = "io.crmerpsync.erp.events.ErpCustomerEvent"
INTEGRATION_USER = Settings().integration_crm_user


def test_ownership_conflicts_are_alerted_with_both_values_and_a_crm_edit_is_restored(sandbox: Sandbox, worker_factory):
    sandbox.create_all()
    crm = Crm(sandbox)
    crm.upsert("account", dbz.account_row("acc-o", "Owned AG", payment_terms="NET30"))
    sandbox.flush()
    worker_factory()
    # the account is known before the ERP answers (its upsert is out; reference data follows within ms)
    sandbox.values("erp.commands.customer", lambda vs: any(v["command"]["account_id"] == "acc-o" for v in vs),
           "the account's customer command")  # fmt: skip
    time.sleep(1)
    created = {
        "event_id": "erp-c-1", "account_id": "acc-o", "command_id": None, "kind": "CREATED",
        "customer_number": "C-900777", "credit_limit": Decimal("75000.00"), "currency": "EUR", "credit_hold": False,
        "payment_terms": "NET60", "merged_into_customer_number": None,
        "occurred_at": dt.datetime.now(dt.UTC), "erp_system": "erp-test",
    }  # fmt: skip
    sandbox.produce_avro("erp.events.customer", EVENT, [(b"acc-o", created)])

    def alert(field: str, state: str):
        return lambda vs: any(v["alert_id"].startswith(f"acc-o:owner:{field}:") and v["state"] == state for v in vs)

    terms = sandbox.values("sync.drift-alerts", alert("payment_terms", "OPEN"), "the payment terms conflict")
    [t] = [a for a in terms if a["alert_id"].startswith("acc-o:owner:payment_terms:")]
    assert (t["kind"], t["expected"], t["observed"]) == ("OWNERSHIP_CONFLICT", "NET30", "NET60")
    sandbox.values("crm.commands.account-update", lambda vs: any(v["erp_customer_number"] == "C-900777" for v in vs),
           "the link written back")  # fmt: skip

    crm.upsert("account", dbz.account_row("acc-o", "Owned AG", payment_terms="NET30", erp_customer_number="C-1"))
    sandbox.flush()
    edits = sandbox.values("sync.drift-alerts", alert("erp_customer_number", "OPEN"), "the edit's conflict")
    [e] = [a for a in edits if a["alert_id"].startswith("acc-o:owner:erp_customer_number:")]
    assert (e["expected"], e["observed"]) == ("C-900777", "C-1")

    def restored(vs):
        return any(v["envelope"]["command_id"].startswith("acc-o:restore:") for v in vs)

    [r] = [v for v in sandbox.values("crm.commands.account-update", restored, "the restore")
           if v["envelope"]["command_id"].startswith("acc-o:restore:")]  # fmt: skip
    assert r["erp_customer_number"] == "C-900777"
    # what crm-writer does with the restore: the ERP's value, written as the integration user
    crm.upsert("account", dbz.account_row("acc-o", "Owned AG", payment_terms="NET30", erp_customer_number="C-900777",
                                          last_modified_by_id=INTEGRATION_USER))  # fmt: skip
    sandbox.flush()
    sandbox.values("sync.drift-alerts", alert("erp_customer_number", "RESOLVED"), "the conflict resolved")
