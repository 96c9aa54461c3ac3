"""ERP feedback on the real broker and registry: CRM updates, parity, drift alerts open and resolved."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from decimal import Decimal

import httpx
import pytest

from app.sim import erp
from tests.support.crm import Crm
from tests.support.kafka import Sandbox

pytestmark = pytest.mark.integration

COMMANDS = "erp.commands.sales-order"
EVENTS = "erp.events.sales-order"
CONTRACT = "io.crmerpsync.erp.events.ErpOrderEvent"
EUR = "EUR"


def send(sandbox: Sandbox, *records) -> None:
    sandbox.produce_avro(EVENTS, CONTRACT, [(r["correlation_id"].encode(), r) for r in records])


def create_of(sandbox: Sandbox, opp: str) -> str:
    msgs = sandbox.collect(COMMANDS, lambda ms: any(m.key() == opp.encode() for m in ms), 90, f"the create for {opp}")
    return next(sandbox.decode(m)["envelope"]["command_id"] for m in msgs if m.key() == opp.encode())


def for_opp(sandbox: Sandbox, name: str, opp: str, done, timeout: float = 60, what: str = "") -> list[dict]:
    def mine(ms):
        return [sandbox.decode(m) for m in ms if m.key() is not None and m.key().decode().startswith(opp)]

    msgs = sandbox.collect(name, lambda ms: done(mine(ms)), timeout, what or f"{name} records for {opp}")
    return mine(msgs)


def shipped_as_ordered(opp: str, complete: bool = True):
    return erp.shipped(
        opp, f"{opp}-shp1", [(f"{opp}-l1", "SKU-A", Decimal("2")), (f"{opp}-l2", "SKU-B", Decimal("1"))], complete
    )


def test_a_full_lifecycle_updates_the_crm_and_raises_no_drift(sandbox: Sandbox, crm: Crm, worker_factory):
    crm.deal("opp-f1")
    sandbox.flush()
    worker_factory()
    command_id = create_of(sandbox, "opp-f1")
    send(sandbox, erp.accepted("opp-f1", Decimal("250.00"), EUR, "SO-1", command_id))
    send(sandbox, shipped_as_ordered("opp-f1"))
    send(sandbox, erp.invoiced("opp-f1", "INV-1", Decimal("250.00"), EUR, tax=Decimal("47.50")))
    send(sandbox, erp.paid("opp-f1", "PAY-1", "INV-1", Decimal("250.00"), EUR))

    updates = for_opp(sandbox, "crm.commands.update", "opp-f1", lambda u: len(u) >= 4)
    statuses = [(u["order_status"], u["fulfilment_status"], u["invoice_status"], u["payment_status"]) for u in updates]
    assert statuses == [
        ("ACCEPTED", "NOT_SHIPPED", "NOT_INVOICED", "UNPAID"),
        ("SHIPPED", "SHIPPED", "NOT_INVOICED", "UNPAID"),
        ("INVOICED", "SHIPPED", "INVOICED", "UNPAID"),
        ("PAID", "SHIPPED", "INVOICED", "PAID"),
    ]
    last = updates[-1]
    assert (last["erp_order_number"], last["amount_invoiced"], last["amount_paid"], last["currency"]) == (
        "SO-1",
        Decimal("250.00"),
        Decimal("250.00"),
        EUR,
    )
    assert {u["envelope"]["command_id"] for u in updates} == {
        f"opp-f1:crm-update:{e}" for e in {u["envelope"]["causation_ids"][0] for u in updates}
    }
    assert sandbox.everything("sync.drift-alerts") == []


def test_disagreements_open_alerts_and_restored_parity_resolves_them(sandbox: Sandbox, crm: Crm, worker_factory):
    crm.deal("opp-f2")
    crm.deal("opp-f3")
    sandbox.flush()
    worker_factory()
    create_of(sandbox, "opp-f3")
    # opp-f2: invoiced before the ERP reports acceptance (out of order), then the acceptance arrives
    send(sandbox, erp.invoiced("opp-f2", "INV-2", Decimal("250.00"), EUR))
    gap = for_opp(sandbox, "sync.drift-alerts", "opp-f2", lambda a: len(a) >= 1, what="the lifecycle gap")[0]
    assert (gap["kind"], gap["state"], gap["alert_id"]) == ("LIFECYCLE_GAP", "OPEN", "opp-f2:gap:not-accepted:1")
    send(sandbox, erp.accepted("opp-f2", Decimal("250.00"), EUR, "SO-2"))
    alerts = for_opp(sandbox, "sync.drift-alerts", "opp-f2", lambda a: len(a) >= 2, what="the gap resolved")
    assert [(a["alert_id"], a["state"]) for a in alerts] == [
        ("opp-f2:gap:not-accepted:1", "OPEN"),
        ("opp-f2:gap:not-accepted:1", "RESOLVED"),
    ]
    # opp-f3: the ERP accepted a different amount, then shipped more than ordered
    send(sandbox, erp.accepted("opp-f3", Decimal("240.00"), EUR, "SO-3"))
    send(sandbox, erp.shipped("opp-f3", "shp", [("opp-f3-l1", "SKU-A", Decimal("3"))], complete=False))
    alerts = for_opp(sandbox, "sync.drift-alerts", "opp-f3", lambda a: len(a) >= 2, what="mismatch alerts")
    by_kind = {a["kind"]: a for a in alerts}
    assert by_kind["AMOUNT_MISMATCH"]["amount_at_risk"] == Decimal("10.00")
    assert by_kind["AMOUNT_MISMATCH"]["customer_id"] == "acc-1"
    assert by_kind["LINE_MISMATCH"]["observed"] == "opp-f3-l1: ordered 2, shipped 3"
    assert all(a["state"] == "OPEN" for a in alerts)

    metrics = metrics_until(
        sandbox,
        lambda m: (
            'crm_erp_sync_open_drift_alerts{kind="AMOUNT_MISMATCH"} 1.0' in m
            and 'crm_erp_sync_open_drift_alerts{kind="LINE_MISMATCH"} 1.0' in m
        ),
    )
    # opp-f3's two alerts (10.00 amount mismatch, 100.00 of lines) put one deal at risk: its largest amount
    assert 'crm_erp_sync_revenue_at_risk{currency="EUR",source="drift_alerts"} 100.0' in metrics
    assert 'crm_erp_sync_drift_alerts_total{kind="LIFECYCLE_GAP",state="RESOLVED"} 1.0' in metrics
    assert 'crm_erp_sync_commands_emitted_total{type="CrmUpdateCommand"}' in metrics
    assert "crm_erp_sync_registry_up 1.0" in metrics
    ready = httpx.get(f"http://127.0.0.1:{sandbox.settings.web_port}/ready", timeout=10).json()
    assert ready["ready"] and ready["tables_recovered"] and ready["registry_reachable"]

    report = reconcile_until(sandbox, lambda r: r["categories"]["mismatched"]["count"] == 1)
    assert {c: report["categories"][c]["count"] for c in report["categories"]} == {
        "matched": 1,
        "only_in_crm": 0,
        "only_in_erp": 0,
        "mismatched": 1,
    }
    assert report["categories"]["mismatched"]["reasons"] == {"AMOUNT_MISMATCH": 1, "LINE_MISMATCH": 1}


def metrics_until(sandbox: Sandbox, done, timeout: float = 45.0) -> str:
    """The worker's /metrics once ``done(text)`` holds (state gauges refresh every 15 s)."""
    deadline = time.monotonic() + timeout
    while True:
        text = httpx.get(f"http://127.0.0.1:{sandbox.settings.web_port}/metrics", timeout=10).text
        if done(text) or time.monotonic() > deadline:
            return text
        time.sleep(1)


def reconcile_until(sandbox: Sandbox, done, timeout: float = 30.0) -> dict:
    """``crm-erp-sync reconcile --json`` as an operator runs it, until the changelog has caught up."""
    deadline = time.monotonic() + timeout
    while True:
        run = subprocess.run(
            [sys.executable, "-m", "app.cli", "reconcile", "--json"],
            env=sandbox.env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0, run.stderr
        report = json.loads(run.stdout)
        if done(report) or time.monotonic() > deadline:
            return report
        time.sleep(1)


def test_a_missing_acceptance_is_healed_once_then_alerted_and_resolved_late(sandbox: Sandbox, crm: Crm, worker_factory):
    crm.deal("opp-f4")
    sandbox.flush()
    worker_factory(CRM_ERP_SLA_ACCEPT_S="3", CRM_ERP_PARITY_CHECK_S="0.5")
    creates = for_opp(sandbox, COMMANDS, "opp-f4", lambda c: len(c) >= 2, 60, "the create and its re-issue")
    assert len({c["envelope"]["command_id"] for c in creates}) == 1
    alert = for_opp(sandbox, "sync.drift-alerts", "opp-f4", lambda a: len(a) >= 1, 60, "the missing acceptance")[0]
    assert (alert["kind"], alert["state"], alert["expected"]) == ("MISSING_EVENT", "OPEN", "OrderAccepted")
    assert alert["amount_at_risk"] == Decimal("250.00") and alert["suggested_owner"] == "order-management"
    send(sandbox, erp.accepted("opp-f4", Decimal("250.00"), EUR, "SO-4", creates[0]["envelope"]["command_id"]))
    alerts = for_opp(sandbox, "sync.drift-alerts", "opp-f4", lambda a: len(a) >= 2, what="the alert resolved")
    assert [(a["alert_id"], a["state"]) for a in alerts] == [
        ("opp-f4:missing:accepted:1", "OPEN"),
        ("opp-f4:missing:accepted:1", "RESOLVED"),
    ]
    audit = for_opp(sandbox, "sync.audit", "opp-f4", lambda a: len(a) >= 4, what="audit records")
    assert {a["action"] for a in audit} >= {"COMMAND_EMITTED", "ALERT_OPENED", "ALERT_RESOLVED"}
    assert any(a["audit_id"].endswith(":reissued") for a in audit)
    assert len(sandbox.everything(COMMANDS)) == 2  # healed once, never again


def test_a_rejection_is_an_exception_and_a_poison_erp_event_is_quarantined(sandbox: Sandbox, crm: Crm, worker_factory):
    crm.deal("opp-f5")
    sandbox.flush()
    worker_factory()
    create_of(sandbox, "opp-f5")
    sandbox.produce_raw(EVENTS, b"opp-f5", b"\x00\x00\x00\x00\x01garbage")
    send(sandbox, erp.rejected("opp-f5", "CREDIT_LIMIT", "customer over credit limit"))
    exc = for_opp(sandbox, "sync.exceptions", "opp-f5", lambda e: len(e) >= 1, what="the rejection")[0]
    assert (exc["reason_code"], exc["exception_type"], exc["correlation_id"]) == (
        "ERP_REJECTED",
        "ERP_REJECTION",
        "opp-f5",
    )
    assert "CREDIT_LIMIT" in exc["detail"]
    update = for_opp(sandbox, "crm.commands.update", "opp-f5", lambda u: len(u) >= 1)[0]
    assert update["order_status"] == "REJECTED"
    dead = sandbox.read("sync.dead-letter", 1)
    assert dict(dead[0].headers())["x-source-topic"].decode() == sandbox.topic(EVENTS)


def test_aggregate_parity_alerts_when_a_window_diverges_and_resolves_when_it_catches_up(
    sandbox: Sandbox, crm: Crm, worker_factory
):
    deals = ["opp-g1", "opp-g2", "opp-g3"]
    for opp in deals:
        crm.deal(opp)
    sandbox.flush()
    worker_factory(
        CRM_ERP_PARITY_WINDOWS="w=4",
        CRM_ERP_SLA_ACCEPT_S="2",
        CRM_ERP_PARITY_CHECK_S="0.5",
        CRM_ERP_AUTO_HEAL="false",
    )
    ids = {opp: create_of(sandbox, opp) for opp in deals}
    send(sandbox, erp.accepted("opp-g1", Decimal("250.00"), EUR, "SO-g1", ids["opp-g1"]))

    def parity_alerts(ms):
        decoded = [sandbox.decode(m) for m in ms]
        return [a for a in decoded if a["kind"] == "AGGREGATE_PARITY"]

    opened = parity_alerts(
        sandbox.collect("sync.drift-alerts", lambda ms: parity_alerts(ms), 60, "an aggregate parity alert")
    )
    assert opened[0]["state"] == "OPEN" and opened[0]["currency"] == EUR
    assert opened[0]["alert_id"].startswith("parity:EUR:w:")
    for opp in deals[1:]:
        send(sandbox, erp.accepted(opp, Decimal("250.00"), EUR, f"SO-{opp}", ids[opp]))

    def settled(ms):
        alerts = parity_alerts(ms)
        opened = {a["alert_id"] for a in alerts if a["state"] == "OPEN"}
        return opened and opened == {a["alert_id"] for a in alerts if a["state"] == "RESOLVED"}

    alerts = parity_alerts(sandbox.collect("sync.drift-alerts", settled, 60, "every parity alert resolved"))
    assert all(a["amount_at_risk"] > 0 for a in alerts if a["state"] == "OPEN")


def test_a_retryable_rejection_sends_the_same_create_again_through_a_retry_tier(
    sandbox: Sandbox, crm: Crm, worker_factory
):
    crm.deal("opp-f6")
    sandbox.flush()
    worker_factory(CRM_ERP_RETRY_DELAYS="10s=1,1m=2,10m=3")
    command_id = create_of(sandbox, "opp-f6")
    send(sandbox, erp.rejected("opp-f6", "LOCKED", "order book locked for month end", retryable=True))
    creates = for_opp(sandbox, COMMANDS, "opp-f6", lambda c: len(c) >= 2, 60, "the create sent again")
    assert {c["envelope"]["command_id"] for c in creates} == {command_id}  # the same command, so the ERP upserts
    assert sandbox.everything("sync.dead-letter", quiet=2) == []
