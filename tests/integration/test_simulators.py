"""Both simulators against a real worker: the CRM's deals become exactly the expected creates, and the
ERP simulator's answers come back to the CRM as update commands."""

from __future__ import annotations

import threading
import time

import pytest

from app.ops import simulate
from app.sim.crm import CrmMix, CrmSimulator
from app.sim.erp_system import ErpConfig, ErpSystem
from tests.support.kafka import Sandbox

pytestmark = pytest.mark.integration

COMMANDS = "erp.commands.sales-order"
UPDATES = "crm.commands.update"


def creates_by_deal(sandbox: Sandbox, msgs) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for m in msgs:
        value = sandbox.decode_named(m)
        name, body = value["command"]
        if name.endswith("CreateSalesOrder"):
            out.setdefault(body["opportunity_id"], set()).add(value["envelope"]["command_id"])
    return out


def test_simulated_crm_and_erp_drive_the_worker_end_to_end(sandbox: Sandbox, worker_factory):
    started = time.monotonic()
    sandbox.create_all()
    worker_factory()
    fast = {"accept_delay": 0.3, "ship_delay": 0.3, "invoice_delay": 0.3, "pay_delay": 0.3}
    erp = ErpSystem(21, ErpConfig.clean(**fast))
    stop, log = threading.Event(), []
    erp_thread = threading.Thread(
        target=simulate.run_erp, args=(sandbox.settings, erp), kwargs={"stop": stop, "say": log.append}, daemon=True
    )
    erp_thread.start()
    try:
        sim = CrmSimulator(21, CrmMix(malformed=0.0, reopened=0.15, incomplete=0.1), count=30, erp_links=True)
        summary = simulate.run_crm(sandbox.settings, sim, rate=200, say=log.append)
        deals = {d.id: d for d in summary.deals}
        assert len(deals) == 30 and summary.messages["duplicate"] > 0 and summary.reordered_pairs > 0
        expected = {opp: d.creates for opp, d in deals.items() if d.creates}
        assert len(expected) >= 15

        def all_created(msgs) -> bool:
            got = creates_by_deal(sandbox, msgs)
            return all(len(got.get(opp, ())) >= n for opp, n in expected.items())

        sandbox.collect(COMMANDS, all_created, 60, "every expected create")
        creates = creates_by_deal(sandbox, sandbox.everything(COMMANDS, quiet=3.0))
        wrong = {opp: (len(creates.get(opp, ())), d.creates) for opp, d in deals.items()
                 if len(creates.get(opp, ())) != d.creates}  # fmt: skip
        assert not wrong, f"distinct create ids (got, expected) per deal: {wrong}"
        one_create = [d for d in deals.values() if d.expects_order and d.creates == 1]
        assert one_create and all(len(creates[d.id]) == 1 for d in one_create)

        live = {opp for opp, d in deals.items() if d.expects_order}

        def paid(msgs) -> bool:
            done = {m.key().decode() for m in msgs if sandbox.decode(m)["order_status"] == "PAID"}
            return live <= done

        sandbox.collect(UPDATES, paid, 45, "a PAID update for every live order")
    finally:
        stop.set()
        erp_thread.join(30)
    s = erp.summary
    assert s.orders == sum(len(ids) for ids in creates.values())  # one ERP order per distinct command id
    assert s.outcomes["accepted"] == s.orders and s.undecodable == 0
    assert s.delivered["PaymentReceived"] >= len(live)
    assert time.monotonic() - started < 90, "the end-to-end simulator test should stay under 90 s"
