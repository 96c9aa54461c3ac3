"""The customer link loop on the real broker and registry: a new account's deal waits for its ERP
customer, the ERP's answer links the account, the CRM is told, and the deal goes on with no CRM
edit; a merge and a delete in the CRM reach the ERP as MERGE and DEACTIVATE."""

from __future__ import annotations

import threading

import pytest

from app.ops import simulate
from app.sim import debezium as dbz
from app.sim.erp_system import ErpConfig, ErpSystem
from tests.support.crm import Crm
from tests.support.kafka import Sandbox

pytestmark = pytest.mark.integration

ORDERS = "erp.commands.sales-order"
CUSTOMERS = "erp.commands.customer"
ACCOUNT_UPDATES = "crm.commands.account-update"


def test_the_erp_link_resumes_a_parked_deal_and_merge_and_delete_reach_the_erp(sandbox: Sandbox, worker_factory):
    sandbox.create_all()
    crm = Crm(sandbox)
    crm.reference_data()  # acc-1, linked as C-1001
    crm.upsert("account", dbz.account_row("acc-new", "Newco AG"))  # no ERP customer yet
    crm.deal("opp-n1", account="acc-new")
    sandbox.flush()
    worker_factory(CRM_ERP_VALIDATION_GRACE_S="1")

    def not_linked(vs):
        return any(v["reason_code"] == "CUSTOMER_NOT_LINKED" and v["correlation_id"] == "opp-n1" for v in vs)

    [waiting] = [v for v in sandbox.values("sync.exceptions", not_linked, "the deal waiting for its link")
                 if v["reason_code"] == "CUSTOMER_NOT_LINKED"]  # fmt: skip
    assert not any(m.key() == b"opp-n1" for m in sandbox.everything(ORDERS, quiet=1.0))

    erp = ErpSystem(5, ErpConfig.clean(customer_delay=0.2, accept_delay=0.2))
    stop = threading.Event()
    erp_thread = threading.Thread(
        target=simulate.run_erp, args=(sandbox.settings, erp), kwargs={"stop": stop, "say": lambda _: None}, daemon=True
    )
    erp_thread.start()
    try:
        updates = sandbox.values(ACCOUNT_UPDATES, lambda vs: any(v["account_id"] == "acc-new" for v in vs),
                         "the link written back to the CRM")  # fmt: skip
        [link] = [u for u in updates if u["account_id"] == "acc-new"]
        number = link["erp_customer_number"]
        assert number.startswith("C-9") and link["erp_customer_status"] == "ACTIVE" and link["credit_limit"] > 0

        def created(vs):
            return any(v["command"][1].get("opportunity_id") == "opp-n1" for v in vs)

        [order] = [v for v in sandbox.values(ORDERS, created, "the deal's order, once linked")
                   if v["command"][1].get("opportunity_id") == "opp-n1"]  # fmt: skip
        assert order["command"][0].endswith("CreateSalesOrder") and order["command"][1]["customer_number"] == number
        sandbox.values(
            "sync.exception-resolutions", lambda vs: any(v["exception_id"] == waiting["exception_id"]
                                                                     for v in vs), "the waiting exception resolved",
        )  # fmt: skip

        crm.upsert("account", dbz.account_row("acc-new", "Newco AG", master_record_id="acc-1"))  # merged into acc-1
        crm.delete("account", "acc-new")  # the CRM removes the merged account
        crm.delete("account", "acc-1")
        sandbox.flush()

        def retired(vs):
            return {v["command"]["action"] for v in vs} >= {"MERGE", "DEACTIVATE"}

        commands = sandbox.values(CUSTOMERS, retired, "the merge and the deactivation")
        by_action = {}
        for c in commands:
            by_action.setdefault(c["command"]["action"], set()).add(c["command"]["account_id"])
        assert by_action["MERGE"] == {"acc-new"} and by_action["DEACTIVATE"] == {"acc-1"}
        [merge] = [c["command"] for c in commands if c["command"]["action"] == "MERGE"]
        assert (merge["merged_into_account_id"], merge["merged_into_customer_number"]) == ("acc-1", "C-1001")

        def statuses(vs):
            return {(v["account_id"], v["erp_customer_status"]) for v in vs}

        sandbox.values(ACCOUNT_UPDATES, lambda vs: {("acc-new", "MERGED"), ("acc-1", "DEACTIVATED")} <= statuses(vs),
               "the ERP's merge and deactivation written back")  # fmt: skip
    finally:
        stop.set()
        erp_thread.join(30)
    assert erp.summary.customers.events["CREATED"] == 1  # acc-new only: acc-1 kept its number
