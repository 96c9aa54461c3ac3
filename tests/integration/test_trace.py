"""``crm-erp-sync trace`` on the real broker and registry: one deal's history across the topics, in time order."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal

import pytest

from app.sim import erp
from tests.support.crm import Crm
from tests.support.kafka import Sandbox, free_port

pytestmark = pytest.mark.integration

OPP = "opp-t1"
COMMANDS = "erp.commands.sales-order"
EVENTS = "erp.events.sales-order"
CONTRACT = "io.crmerpsync.erp.events.ErpOrderEvent"


def trace(sandbox: Sandbox, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "trace", *args],
        env=sandbox.env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def keyed(sandbox: Sandbox, name: str, done, what: str) -> list:
    msgs = sandbox.collect(name, lambda ms: done([m for m in ms if m.key() == OPP.encode()]), 90, what)
    return [m for m in msgs if m.key() == OPP.encode()]


def test_trace_shows_a_deal_from_cdc_to_order_to_erp_acceptance_to_crm_update(sandbox: Sandbox, worker_factory):
    sandbox.create_all()
    crm = Crm(sandbox)
    crm.reference_data()
    crm.deal(OPP)
    crm.deal("opp-t10")  # a neighbour whose id starts like ours: none of it may show up
    sandbox.flush()
    worker_factory()

    create = sandbox.decode(keyed(sandbox, COMMANDS, lambda ms: ms, "the create command")[0])
    command_id = create["envelope"]["command_id"]
    record = erp.accepted(OPP, Decimal("250.00"), "EUR", "SO-T1", command_id)
    sandbox.produce_avro(EVENTS, CONTRACT, [(OPP.encode(), record)])
    keyed(sandbox, "crm.commands.update", lambda ms: ms, "the CRM update")
    sandbox.produce_raw(EVENTS, OPP.encode(), b"\x00\x00\x00\x00\x01garbage")  # quarantined by the worker
    dead_letter = sandbox.collect("sync.dead-letter", lambda ms: ms, 60, "the quarantined ERP event")[0]
    dlq_id = dict(dead_letter.headers() or []).get("x-exception-id")
    if dlq_id:  # the worker records a quarantine as an exception too: wait for it
        sandbox.collect("sync.exceptions", lambda ms: any(dlq_id.decode() in str(m.value()) for m in ms), 60)

    run = trace(sandbox, OPP, "--json")
    assert run.returncode == 0, run.stderr
    events = json.loads(run.stdout)
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)
    assert all("opp-t10" not in e["summary"] for e in events)

    def first(kind: str, text: str = "") -> int:
        return next(i for i, e in enumerate(events) if e["kind"] == kind and text in e["summary"])

    # every CDC change of the deal; arrival order is per source topic, so only the header's stages keep theirs
    cdc = [e["summary"].split(" (")[0] for e in events if e["kind"] == "CDC"]
    assert sorted(cdc) == sorted(
        [
            "CRM opportunity UPSERT opp-t1 stage=PROSPECTING amount=250.00 currency=EUR",
            "CRM opportunity_line_item UPSERT opp-t1-l1 product_id=prod-a quantity=2.0000 unit_price=100.00",
            "CRM opportunity_line_item UPSERT opp-t1-l2 product_id=prod-b quantity=1.0000 unit_price=50.00",
            "CRM opportunity UPSERT opp-t1 stage=NEGOTIATION amount=250.00 currency=EUR",
            "CRM opportunity UPSERT opp-t1 stage=CLOSED_WON amount=250.00 currency=EUR",
        ]
    )
    assert [s.split("stage=")[1].split()[0] for s in cdc if "stage=" in s] == [
        "PROSPECTING",
        "NEGOTIATION",
        "CLOSED_WON",
    ]
    lineage = [e["summary"].rsplit(" (", 1)[1] for e in events if e["kind"] == "CDC"]
    assert all(s.startswith("crm.public.opportunity") and s.endswith(")") for s in lineage)  # without the prefix
    closed = max(i for i, e in enumerate(events) if e["kind"] == "CDC")
    order = first("ERP-COMMAND", "CreateSalesOrder")
    assert events[order]["ids"] == {"command_id": command_id}
    assert events[order]["topic"] == COMMANDS
    erp_in = first("ERP-IN", "OrderAccepted")
    accepted = first("ERP", "OrderAccepted")
    assert events[accepted]["ids"] == {"event_id": record["event_id"], "command_id": command_id}
    update = first("CRM-UPDATE", "order=ACCEPTED")
    assert events[update]["summary"].endswith("erp_order=SO-T1")
    assert closed < order < erp_in < accepted < update

    audit = [e for e in events if e["kind"] == "AUDIT"]
    assert any(e["summary"].startswith("AUDIT COMMAND_EMITTED") and command_id in e["summary"] for e in audit)
    poison = first("ERP-IN", "undecodable")
    dead = first("DEAD-LETTER")
    assert update < poison < dead
    assert f" from {EVENTS}/0/" in events[dead]["summary"]  # the reason depends on what schema id 1 is
    if dlq_id:
        assert events[dead]["ids"] == {"exception_id": dlq_id.decode()}
        assert any(e["kind"] == "EXCEPTION" and e["ids"]["exception_id"] == dlq_id.decode() for e in events[dead:])

    text = trace(sandbox, OPP)
    assert text.returncode == 0, text.stderr
    print(text.stdout)  # the operator's view (pytest -s shows it)
    assert len(text.stdout.splitlines()) == len(events)
    assert f"[command_id={command_id}]" in text.stdout

    since = trace(sandbox, OPP, "--json", "--since", events[order]["at"])
    assert since.returncode == 0, since.stderr
    later = json.loads(since.stdout)
    assert later == [e for e in events if e["at"] >= events[order]["at"]]
    assert "CDC" not in {e["kind"] for e in later} and "ERP-COMMAND" in {e["kind"] for e in later}

    unreachable = trace(sandbox, OPP, CRM_ERP_REGISTRY_URL=f"http://127.0.0.1:{free_port()}/apis/ccompat/v7")
    assert unreachable.returncode == 2
    assert unreachable.stderr.startswith("crm-erp-sync trace: cannot reach the schema registry")


def test_an_unreachable_broker_is_exit_code_2_with_one_line(sandbox: Sandbox):
    run = trace(sandbox, OPP, CRM_ERP_KAFKA_BOOTSTRAP=f"127.0.0.1:{free_port()}")
    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr.startswith("crm-erp-sync trace: cannot reach Kafka at 127.0.0.1:")
    assert len(run.stderr.strip().splitlines()) == 1
