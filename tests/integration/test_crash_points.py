"""``kill -9`` at each crash point of each keyed flow, on the real platform (docs/guarantees.md#crash-points).

For every flow and point, a worker runs with ``CRM_ERP_FAILPOINTS=<flow>.<point>:<topic>`` and kills
itself at the first step of that flow that sends to ``<topic>``: after the step's state and outbox
are written and before anything is sent (``after_state``), or once its outputs are on the broker
and before the input is committed (``after_send``). A second worker starts on the same state
directory. Every output the flow decided must then be on the broker with its id (more than one
copy of an id is allowed, a second id for the same decision is not), every input committed, and
nothing else present.

Before the engine's outbox, ``after_state`` lost the output of every flow but the deal agent's
(which kept its last four decisions in the deal state): the redelivered input found its effect in
state and sent nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import time
from decimal import Decimal

import httpx
import pytest

from app.ops.worker_process import WorkerProcess
from app.sim import erp
from tests.support.crm import Crm
from tests.support.erp import rejection_exception
from tests.support.faults import CRM_TOPICS, wait_all_committed
from tests.support.kafka import Sandbox, worker

pytestmark = pytest.mark.integration

SESSION_TIMEOUT_S = 6
FAST = {"CRM_ERP_SESSION_TIMEOUT_S": str(SESSION_TIMEOUT_S)}
EVENTS, ERP_EVENT = "erp.events.sales-order", "io.crmerpsync.erp.events.ErpOrderEvent"
EXCEPTION = "io.crmerpsync.sync.ExceptionRecord"
POINTS = ("after_state", "after_send")


class Run:
    """A sandbox with its CRM world, a worker armed with one fail-point, and its successor."""

    def __init__(self, sandbox: Sandbox, tmp_path, **env: str) -> None:
        self.sb, self.tmp, self.env = sandbox, tmp_path, {**FAST, **env}
        sandbox.create_all()
        self.crm = Crm(sandbox)
        self.workers: list[WorkerProcess] = []

    def armed(self, failpoint: str) -> WorkerProcess:
        w = worker(self.sb, self.tmp / "armed.log", CRM_ERP_FAILPOINTS=failpoint, **self.env)
        self.workers.append(w)
        with contextlib.suppress(RuntimeError):  # it may reach its fail-point before it logs that it is ready
            w.start()
        return w

    def died(self, w: WorkerProcess, failpoint: str, timeout: float = 120) -> None:
        """Wait until ``w`` has killed itself at ``failpoint``; then the successor starts on its state."""
        w.proc.wait(timeout)
        assert w.proc.returncode == -9, w.tail()
        assert f"fail-point {failpoint.split(':')[0]} reached" in w.log.read_text()
        time.sleep(SESSION_TIMEOUT_S + 2)  # the dead member leaves the group
        self.successor = worker(self.sb, self.tmp / "successor.log", **self.env).start()
        self.workers.append(self.successor)

    def values(self, name: str, quiet: float = 3.0) -> list[dict]:
        return [self.sb.decode(m) for m in self.sb.everything(name, quiet)]

    def wait_for(self, name: str, done, what: str, timeout: float = 90) -> list[dict]:
        try:
            msgs = self.sb.collect(name, lambda ms: done([self.sb.decode(m) for m in ms]), timeout, what)
        except AssertionError as missing:
            raise AssertionError(f"{missing}\n{self.diagnosis()}") from None
        return [self.sb.decode(m) for m in msgs]

    def diagnosis(self) -> str:
        """What the successor waits on, if it does nothing (the restart stall of issue 22): its /ready
        and every asyncio task down to its innermost await (``kill -USR1``)."""
        worker = getattr(self, "successor", None)
        if worker is None or worker.proc is None or worker.proc.poll() is not None:
            return "no successor running"
        os.kill(worker.proc.pid, signal.SIGUSR1)
        time.sleep(2)
        try:
            ready = httpx.get(f"http://127.0.0.1:{self.sb.settings.web_port}/ready", timeout=10).text
        except httpx.HTTPError as exc:
            ready = repr(exc)
        return f"successor /ready: {ready}\n{worker.tail(600)}"

    def committed(self, names: list[str]) -> None:
        wait_all_committed(self.sb, names, timeout=90)

    def close(self) -> None:
        for w in self.workers:
            w.kill()


@pytest.fixture
def run_(sandbox: Sandbox, tmp_path):
    runs: list[Run] = []

    def make(**env: str) -> Run:
        r = Run(sandbox, tmp_path, **env)
        runs.append(r)
        return r

    yield make
    for r in runs:
        r.close()


def ids(values: list[dict]) -> set[str]:
    return {v["envelope"]["command_id"] for v in values}


def audited(run: Run) -> set[str]:
    return {a["subject_id"] for a in run.values("sync.audit")}


# --- deals: creates, CRM updates, drift alerts opened and resolved ------------------------------


@pytest.mark.parametrize("point", POINTS)
def test_deals_create(run_, point):
    run = run_()
    run.crm.reference_data()
    run.crm.deal("opp-x1")
    run.sb.flush()
    fp = f"deals.{point}:erp.commands.sales-order"
    run.died(run.armed(fp), fp)

    creates = run.wait_for("erp.commands.sales-order", lambda v: v, "the create")
    [create] = ids(creates)
    assert create.startswith("opp-x1:create:")
    run.committed([*CRM_TOPICS, "sync.deal-changes"])
    assert ids(run.values("erp.commands.sales-order")) == {create}
    upserts = ids(run.values("erp.commands.customer"))
    assert audited(run) == {create} | upserts  # every command audited, nothing else
    assert run.values("sync.exceptions", quiet=1) == [] and run.values("sync.drift-alerts", quiet=1) == []


def test_deals_crm_update_after_state(run_):
    run = run_()
    run.crm.reference_data()
    run.crm.deal("opp-x2")
    run.sb.flush()
    fp = "deals.after_state:crm.commands.update"
    armed = run.armed(fp)
    [create] = ids(run.wait_for("erp.commands.sales-order", lambda v: v, "the create"))
    accepted = erp.accepted("opp-x2", Decimal("250.00"), "EUR", "SO-x2", create)
    run.sb.produce_avro(EVENTS, ERP_EVENT, [(b"opp-x2", accepted)])
    run.sb.flush()
    run.died(armed, fp)

    updates = run.wait_for("crm.commands.update", lambda v: v, "the CRM update")
    run.committed([EVENTS, "sync.deal-changes"])
    expected = {f"opp-x2:crm-update:{accepted['event_id']}"}
    assert ids(updates) == expected and ids(run.values("crm.commands.update")) == expected
    assert [u["order_status"] for u in run.values("crm.commands.update")][-1] == "ACCEPTED"
    assert expected <= audited(run)


def test_deals_drift_alert_resolved_after_send(run_):
    run = run_()
    run.crm.reference_data()
    run.crm.deal("opp-x3")
    run.sb.flush()
    fp = "deals.after_send:sync.drift-alerts@2"  # the second step with an alert: the one that resolves it
    armed = run.armed(fp)
    run.wait_for("erp.commands.sales-order", lambda v: v, "the create")
    run.sb.produce_avro(EVENTS, ERP_EVENT, [(b"opp-x3", erp.invoiced("opp-x3", "INV-x3", Decimal("250.00"), "EUR"))])
    run.sb.flush()
    run.wait_for("sync.drift-alerts", lambda v: v, "the lifecycle gap")
    run.sb.produce_avro(EVENTS, ERP_EVENT, [(b"opp-x3", erp.accepted("opp-x3", Decimal("250.00"), "EUR", "SO-x3"))])
    run.sb.flush()
    run.died(armed, fp)

    run.committed([EVENTS, "sync.deal-changes"])
    alerts = {(a["alert_id"], a["state"]) for a in run.values("sync.drift-alerts")}
    assert alerts == {("opp-x3:gap:not-accepted:1", "OPEN"), ("opp-x3:gap:not-accepted:1", "RESOLVED")}


# --- aggregate parity ---------------------------------------------------------------------------


@pytest.mark.parametrize("point", POINTS)
def test_parity_alert(run_, point):
    run = run_(
        CRM_ERP_PARITY_WINDOWS="w=4",
        CRM_ERP_SLA_ACCEPT_S="2",
        CRM_ERP_PARITY_CHECK_S="0.5",
        CRM_ERP_AUTO_HEAL="false",
    )
    run.crm.reference_data()
    run.crm.deal("opp-x4")
    run.sb.flush()
    fp = f"parity.{point}:sync.drift-alerts"
    run.died(run.armed(fp), fp)  # the deal is ordered, nothing is accepted: its window diverges

    def parity(values):
        return [a for a in values if a["kind"] == "AGGREGATE_PARITY"]

    opened = parity(run.wait_for("sync.drift-alerts", parity, "the aggregate parity alert"))
    alert_ids = {a["alert_id"] for a in opened}
    assert all(a["state"] == "OPEN" and a["alert_id"].startswith("parity:EUR:w:") for a in opened)
    [create] = ids(run.values("erp.commands.sales-order"))
    accepted = erp.accepted("opp-x4", Decimal("250.00"), "EUR", "SO-x4", create)
    run.sb.produce_avro(EVENTS, ERP_EVENT, [(b"opp-x4", accepted)])
    run.sb.flush()

    def settled(values):
        found = parity(values)
        return {a["alert_id"] for a in found if a["state"] == "RESOLVED"} >= alert_ids

    parity(run.wait_for("sync.drift-alerts", settled, "the parity alert resolved"))
    run.committed(["sync.parity-facts"])
    states = {(a["alert_id"], a["state"]) for a in parity(run.values("sync.drift-alerts"))}
    assert states == {(i, s) for i in alert_ids for s in ("OPEN", "RESOLVED")}  # no other window, no other id


# --- exception ledger: escalations --------------------------------------------------------------


@pytest.mark.parametrize("point", POINTS)
def test_ledger_escalation(run_, point):
    run = run_(CRM_ERP_ESCALATION_CHECK_S="0.5")
    overdue = rejection_exception("opp-x5", dt.datetime.now(dt.UTC) - dt.timedelta(hours=5))
    run.sb.produce_avro("sync.exceptions", EXCEPTION, [(b"opp-x5", overdue)])
    run.sb.flush()
    fp = f"ledger.{point}:sync.escalations"
    run.died(run.armed(fp), fp)

    run.wait_for("sync.escalations", lambda v: v, "the escalation")
    run.committed(["sync.exception-ledger"])
    time.sleep(2)  # a few more SLA checks: escalated once
    escalations = run.values("sync.escalations")
    assert {e["exception_id"] for e in escalations} == {"opp-x5:ERP_REJECTED:evt-9"}
    assert len({e["escalation_id"] for e in escalations}) == 1
    assert len(escalations) <= (1 if point == "after_state" else 2)


# --- accounts: customer upserts -----------------------------------------------------------------


@pytest.mark.parametrize("point", POINTS)
def test_accounts_upsert(run_, point):
    run = run_()
    run.crm.reference_data()
    run.sb.flush()
    fp = f"accounts.{point}:erp.commands.customer"
    run.died(run.armed(fp), fp)

    upserts = run.wait_for("erp.commands.customer", lambda v: v, "the customer upsert")
    run.committed(CRM_TOPICS)
    [upsert] = ids(upserts)
    assert upsert.startswith("acc-1:upsert:") and ids(run.values("erp.commands.customer")) == {upsert}
    assert audited(run) == {upsert}
