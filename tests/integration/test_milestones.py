"""Activation and acceptance milestones on the real broker and registry (issue 25, item 4).

A deal billed on milestones: the ERP's milestone events (their own topic and contract) reach the
CRM as update commands; an invoice issued before the customer's acceptance is a LIFECYCLE_GAP drift
alert that the acceptance resolves; a milestone event the service cannot map is quarantined with
its reason, and the partition goes on.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.sim import erp
from tests.integration.test_erp_feedback import create_of, for_opp, send, shipped_as_ordered
from tests.support.crm import Crm
from tests.support.kafka import Sandbox

pytestmark = pytest.mark.integration

MILESTONES = "erp.events.milestone"
MILESTONE = "io.crmerpsync.erp.events.ErpMilestoneEvent"
EUR = "EUR"


def milestone(sandbox: Sandbox, *records) -> None:
    sandbox.produce_avro(MILESTONES, MILESTONE, [(r["correlation_id"].encode(), r) for r in records])


def test_milestones_reach_the_crm_and_an_invoice_before_the_acceptance_is_a_gap_until_it(
    sandbox: Sandbox, crm: Crm, worker_factory
):
    opp = "opp-m1"
    crm.deal(opp, billing_schedule="Milestone")
    sandbox.flush()
    worker_factory()
    command_id = create_of(sandbox, opp)
    send(sandbox, erp.accepted(opp, Decimal("250.00"), EUR, "SO-M1", command_id))
    send(sandbox, shipped_as_ordered(opp))
    milestone(sandbox, erp.milestone(opp, "SERVICE_ACTIVATED", "ACT-1", command_id, "SO-M1", event_id="m1-act"))
    send(sandbox, erp.invoiced(opp, "INV-M1", Decimal("250.00"), EUR, tax=Decimal("47.50")))

    gap = f"{opp}:gap:invoiced-before-acceptance:1"
    alerts = for_opp(sandbox, "sync.drift-alerts", opp, lambda a: any(x["alert_id"] == gap for x in a))
    [opened] = [a for a in alerts if a["alert_id"] == gap]
    assert (opened["kind"], opened["state"], opened["suggested_owner"]) == ("LIFECYCLE_GAP", "OPEN", "billing")

    milestone(sandbox, erp.milestone(opp, "CUSTOMER_ACCEPTED", "ACC-1", command_id, "SO-M1", event_id="m1-acc"))
    alerts = for_opp(sandbox, "sync.drift-alerts", opp, lambda a: any(x["state"] == "RESOLVED" for x in a))
    assert [(a["alert_id"], a["state"]) for a in alerts if a["alert_id"] == gap] == [(gap, "OPEN"), (gap, "RESOLVED")]

    updates = for_opp(sandbox, "crm.commands.update", opp, lambda u: any(x["customer_accepted_at"] for x in u))
    activated = [u for u in updates if u["service_activated_at"] is not None]
    assert activated and activated[0]["customer_accepted_at"] is None  # told when it happened, one at a time
    assert updates[-1]["service_activated_at"] and updates[-1]["customer_accepted_at"]
    assert updates[-1]["order_status"] == "INVOICED"


def test_a_milestone_the_service_cannot_map_is_quarantined_and_the_partition_goes_on(
    sandbox: Sandbox, crm: Crm, worker_factory
):
    opp = "opp-m2"
    crm.deal(opp, billing_schedule="Milestone")
    sandbox.flush()
    worker_factory()
    command_id = create_of(sandbox, opp)
    milestone(sandbox, erp.milestone(opp, "UNKNOWN", "X-1", command_id, event_id="m2-unknown"))
    milestone(sandbox, erp.milestone(opp, "SERVICE_ACTIVATED", "ACT-2", command_id, event_id="m2-act"))
    updates = for_opp(sandbox, "crm.commands.update", opp, lambda u: any(x["service_activated_at"] for x in u))
    assert updates[-1]["service_activated_at"]
    dead = sandbox.read("sync.dead-letter", 1)
    headers = {k: v.decode() for k, v in dead[0].headers()}
    assert headers["x-source-topic"] == sandbox.topic(MILESTONES)
    assert headers["x-reason"] == "SCHEMA_MISMATCH" and "m2-unknown" in headers["x-detail"]
