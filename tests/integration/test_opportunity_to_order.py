"""CRM CDC → ERP sales orders on the real broker and registry, with the worker as a subprocess."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from app.sim import debezium as dbz
from tests.support.crm import Crm
from tests.support.kafka import Sandbox, free_port

pytestmark = pytest.mark.integration

COMMANDS = "erp.commands.sales-order"


def kinds(sandbox: Sandbox, msgs) -> list[tuple[str, str, dict]]:
    """(command kind, command id, command body) of each sales-order command message."""
    out = []
    for m in msgs:
        value = sandbox.decode_named(m)
        name, body = value["command"]
        out.append((name.rsplit(".", 1)[1], value["envelope"]["command_id"], body))
    return out


def commands_for(sandbox, opp, count, timeout=60.0):
    msgs = sandbox.collect(
        COMMANDS, lambda ms: sum(m.key() == opp.encode() for m in ms) >= count, timeout, f"{count} command(s) for {opp}"
    )
    return kinds(sandbox, [m for m in msgs if m.key() == opp.encode()])


def settle(sandbox, seconds=4.0):
    """Give the worker time to (not) emit anything more."""
    time.sleep(seconds)


def assert_one_create_per_deal(sandbox: Sandbox, deals: list[str], timeout: float) -> None:
    """Every deal gets a create, and all of a deal's creates (re-emits included) carry one command id."""
    sandbox.collect(COMMANDS, lambda ms: len({m.key() for m in ms}) >= len(deals), timeout, "a command per deal")
    msgs = sandbox.everything(COMMANDS)  # all of them: re-emits after a rebalance may have added some
    distinct: dict[str, set[str]] = {opp: set() for opp in deals}
    for kind, command_id, body in kinds(sandbox, msgs):
        assert kind == "CreateSalesOrder"
        distinct[body["opportunity_id"]].add(command_id)
    assert all(len(ids) == 1 for ids in distinct.values()), {o: i for o, i in distinct.items() if len(i) != 1}


@pytest.fixture
def crm(sandbox: Sandbox) -> Crm:
    sandbox.create_all()
    return Crm(sandbox)


def test_a_closed_won_deal_yields_exactly_one_complete_create(sandbox: Sandbox, crm: Crm, worker_factory):
    crm.reference_data()
    crm.deal("opp-1")
    sandbox.flush()
    worker_factory()

    [(kind, command_id, body)] = commands_for(sandbox, "opp-1", 1)
    settle(sandbox)
    assert len(commands_for(sandbox, "opp-1", 1)) == 1
    assert kind == "CreateSalesOrder" and command_id.startswith("opp-1:create:lsn:")
    assert body["customer_number"] == "C-1001" and str(body["amount"]) == "250.00"
    assert sorted((ln["erp_item_code"], str(ln["quantity"])) for ln in body["lines"]) == [
        ("ERP-SKU-A", "2.0000"),
        ("ERP-SKU-B", "1.0000"),
    ]
    assert body["payment_terms"] == "NET30" and body["bill_to"]["city"] == "Berlin"
    customers = sandbox.read("erp.commands.customer", 1)
    assert sandbox.decode_named(customers[0])["command"]["customer_number"] == "C-1001"


def test_duplicated_and_reordered_cdc_still_yield_one_create(sandbox: Sandbox, crm: Crm, worker_factory):
    crm.reference_data()
    close = crm.stage("opp-2", "Closed Won")  # the close arrives before the lines
    l1 = crm.upsert("opportunity_line_item", dbz.line_row("opp-2-l1", "opp-2", "prod-a", 2, 100))
    crm.resend("opportunity", "opp-2", close)  # a duplicate of the close
    crm.upsert("opportunity_line_item", dbz.line_row("opp-2-l2", "opp-2", "prod-b", 1, 50))
    crm.resend("opportunity_line_item", "opp-2-l1", l1)
    crm.resend("opportunity", "opp-2", close)
    sandbox.flush()
    worker_factory()

    [(_, _, body)] = commands_for(sandbox, "opp-2", 1)
    settle(sandbox)
    assert [k for k, _, _ in commands_for(sandbox, "opp-2", 1)] == ["CreateSalesOrder"]
    assert len(body["lines"]) == 2


def test_reopening_a_won_deal_cancels_its_order(sandbox: Sandbox, crm: Crm, worker_factory):
    crm.reference_data()
    crm.deal("opp-3")
    sandbox.flush()
    worker_factory()
    commands_for(sandbox, "opp-3", 1)
    crm.stage("opp-3", "Negotiation")
    sandbox.flush()

    cmds = commands_for(sandbox, "opp-3", 2)
    assert [k for k, _, _ in cmds] == ["CreateSalesOrder", "CancelSalesOrder"]
    assert cmds[1][2]["reason"] == "DEAL_REOPENED"


def test_a_deal_waiting_for_its_customer_link_is_parked_then_completed(sandbox: Sandbox, crm: Crm, worker_factory):
    crm.reference_data(linked=False)
    crm.deal("opp-4")
    sandbox.flush()
    worker_factory()

    # the deal may first wait for the account itself (reference data is eventually consistent)
    def not_linked(msgs):
        return [r for r in map(sandbox.decode, msgs) if r["reason_code"] == "CUSTOMER_NOT_LINKED"]

    record = not_linked(sandbox.collect("sync.exceptions", not_linked, 60, "a CUSTOMER_NOT_LINKED exception"))[0]
    assert record["status"] == "PARKED"
    assert record["correlation_id"] == "opp-4" and str(record["amount_at_risk"]) == "250.00"

    crm.upsert("account", dbz.account_row("acc-1", "ACME GmbH", erp_customer_number="C-1001"))
    sandbox.flush()
    [(kind, _, body)] = commands_for(sandbox, "opp-4", 1)
    assert kind == "CreateSalesOrder" and body["customer_number"] == "C-1001"
    resolutions = [
        sandbox.decode(m)
        for m in sandbox.collect(
            "sync.exception-resolutions",
            lambda ms: record["exception_id"] in {sandbox.decode(m)["exception_id"] for m in ms},
            30,
            "its resolution",
        )
    ]
    [resolution] = [r for r in resolutions if r["exception_id"] == record["exception_id"]]
    assert resolution["resolution"] == "DEPENDENCY_ARRIVED"


def test_poison_and_unknown_schema_id_are_quarantined_and_the_next_deal_flows(
    sandbox: Sandbox, crm: Crm, worker_factory
):
    crm.reference_data()
    sandbox.produce_raw("crm.public.opportunity", b"opp-x", b"\x09garbage")
    sandbox.produce_raw("crm.public.opportunity", b"opp-x", b"\x00\x7f\xff\xff\xf0\x02\x04")
    crm.deal("opp-5")
    sandbox.flush()
    worker_factory()

    assert [k for k, _, _ in commands_for(sandbox, "opp-5", 1)] == ["CreateSalesOrder"]
    dead = sandbox.read("sync.dead-letter", 2)
    assert sorted(dict(m.headers())["x-reason"].decode() for m in dead) == ["BAD_MAGIC_BYTE", "UNKNOWN_SCHEMA_ID"]
    assert {m.value() for m in dead} == {b"\x09garbage", b"\x00\x7f\xff\xff\xf0\x02\x04"}


# how many times the kill-restart test runs: 3 in `make test`, 20 in `make soak` (a rare stall, once seen)
RESTART_RUNS = int(os.environ.get("CRM_ERP_RESTART_RUNS", "3"))


@pytest.mark.parametrize("run", range(RESTART_RUNS))
def test_sigkill_mid_stream_yields_one_distinct_create_per_deal(sandbox: Sandbox, crm: Crm, worker_factory, run):
    crm.reference_data()
    deals = [f"opp-k{i}" for i in range(150)]
    for opp in deals[:100]:
        crm.deal(opp)
    sandbox.flush()
    worker = worker_factory()
    sandbox.collect(COMMANDS, lambda ms: len(ms) >= 20, 90, "the first commands")
    worker.kill(signal.SIGKILL)
    for opp in deals[100:]:
        crm.deal(opp)
    sandbox.flush()
    # restart once the broker has noticed the death (session timeout): an immediate restart, joining
    # while the dead member still holds the partitions, has been seen to stall (README, known problems)
    time.sleep(sandbox.settings.session_timeout_s + 2)
    restarted = worker_factory()
    try:
        assert_one_create_per_deal(sandbox, deals, timeout=120)
    except AssertionError:  # a stall: say what the restarted worker was waiting on
        os.kill(restarted.pid, signal.SIGUSR1)
        time.sleep(2)
        ready = httpx.get(f"http://127.0.0.1:{sandbox.settings.web_port}/ready", timeout=10).text
        raise AssertionError(f"/ready: {ready}\n{restarted.tail(400)}") from None


def test_a_worker_joining_mid_stream_loses_nothing(sandbox: Sandbox, crm: Crm, worker_factory, tmp_path):
    """Scale-out: partitions move to a second worker while the first is mid-stream (see app.engine.stream_topic)."""
    crm.reference_data()
    deals = [f"opp-s{i}" for i in range(400)]
    for opp in deals:
        crm.deal(opp)
    sandbox.flush()
    worker_factory()
    sandbox.collect(COMMANDS, lambda ms: len(ms) >= 10, 90, "the first commands")
    worker_factory(CRM_ERP_DATA_DIR=str(tmp_path / "second"), CRM_ERP_WEB_PORT=str(free_port()))

    assert_one_create_per_deal(sandbox, deals, timeout=180)


def test_the_unwrapped_form_yields_the_same_order(sandbox: Sandbox, crm: Crm, worker_factory):
    crm.reference_data()  # the unwrapped form follows the envelope in the same subjects: the producer's to allow
    lsn = dbz.Lsn(start=0x3000_0000)
    rows = [
        ("opportunity_line_item", dbz.line_row("u-l1", "opp-u", "prod-a", 2, 100)),
        ("opportunity_line_item", dbz.line_row("u-l2", "opp-u", "prod-b", 1, 50)),
        ("opportunity", dbz.opportunity_row("opp-u", "acc-1", "Closed Won", "250.00")),
    ]
    for table, row in rows:
        sandbox.produce_cdc(table, row["id"], dbz.unwrapped(table, row, "c", lsn.next(), lsn.ts_ms), unwrapped=True)
    sandbox.flush()
    worker_factory()

    [(kind, command_id, body)] = commands_for(sandbox, "opp-u", 1)
    assert kind == "CreateSalesOrder" and str(body["amount"]) == "250.00" and len(body["lines"]) == 2
    assert command_id.startswith("opp-u:create:lsn:")


def test_a_truncate_is_reported_and_never_applied_as_deletes(sandbox: Sandbox, crm: Crm, worker_factory):
    crm.reference_data()
    crm.deal("opp-t")
    sandbox.produce_cdc("opportunity", "opp-t", dbz.truncate("opportunity", crm.lsn))
    sandbox.flush()
    worker_factory()

    [dead] = sandbox.read("sync.dead-letter", 1)
    assert dict(dead.headers())["x-reason"] == b"TRUNCATE_NOT_APPLIED"
    settle(sandbox)
    assert [k for k, _, _ in commands_for(sandbox, "opp-t", 1)] == ["CreateSalesOrder"]  # no cancel
