"""Exception operations on the real platform: retry tiers, quarantine context, escalation."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
import time
from urllib.parse import urlparse

import pytest

from app.domain.outputs import EXCEPTION
from app.settings import REPO_ROOT
from tests.support.crm import Crm
from tests.support.erp import rejection_exception
from tests.support.kafka import Sandbox
from tests.support.proxy import Proxy

pytestmark = pytest.mark.integration

COMMANDS = "erp.commands.sales-order"


def test_a_registry_outage_recovers_through_the_retry_tiers_without_an_operator(
    sandbox: Sandbox, crm: Crm, worker_factory
):
    registry = urlparse(sandbox.settings.registry_url)
    proxy = Proxy(registry.hostname, registry.port)
    try:
        via_proxy = sandbox.settings.registry_url.replace(f":{registry.port}", f":{proxy.port}")
        worker_factory(CRM_ERP_REGISTRY_URL=via_proxy, CRM_ERP_RETRY_DELAYS="10s=2,1m=3,10m=4")
        proxy.down = True  # the worker is up; every schema it has not seen yet is now out of reach
        crm.deal("opp-r1")
        sandbox.flush()
        tiered = sandbox.collect("sync.retry.10s", lambda ms: len(ms) >= 1, 60, "a message in the first tier")
        headers = dict(tiered[0].headers())
        assert headers["x-reason"] == b"REGISTRY_UNAVAILABLE" and headers["x-retry-attempt"] == b"1"
        proxy.down = False
        msgs = sandbox.collect(COMMANDS, lambda ms: any(m.key() == b"opp-r1" for m in ms), 90, "the order")
        assert len([m for m in msgs if m.key() == b"opp-r1"]) == 1
        assert sandbox.everything("sync.dead-letter") == []
    finally:
        proxy.close()


def test_a_poison_record_is_dead_lettered_with_its_full_context_and_an_exception_record(
    sandbox: Sandbox, crm: Crm, worker_factory
):
    worker_factory()
    sandbox.produce_raw("crm.public.opportunity", b"opp-p1", b"\x09not avro")
    dead = sandbox.read("sync.dead-letter", 1)[0]
    headers = dict(dead.headers())
    source = sandbox.topic("crm.public.opportunity")
    assert (dead.key(), dead.value()) == (b"opp-p1", b"\x09not avro")
    assert headers["x-reason"] == b"BAD_MAGIC_BYTE" and headers["x-source-topic"] == source.encode()
    exception_id = headers["x-exception-id"].decode()
    coordinates = f"{source}/{headers['x-source-partition'].decode()}/{headers['x-source-offset'].decode()}"
    assert exception_id == f"dlq:{coordinates}"
    record = sandbox.decode(sandbox.read("sync.exceptions", 1)[0])
    assert (record["exception_id"], record["status"], record["exception_type"]) == (
        exception_id,
        "DEAD_LETTERED",
        "POISON_INPUT",
    )
    assert (record["original_key"], record["original_value"]) == (b"opp-p1", b"\x09not avro")
    assert record["lineage"]["source_topic"] == source and record["owner_team"] == "integration-platform"
    audit = sandbox.collect(
        "sync.audit",
        lambda ms: any(sandbox.decode(m)["action"] == "EXCEPTION_RAISED" for m in ms),
        60,
        "the exception's audit record",
    )
    [raised] = [a for a in map(sandbox.decode, audit) if a["action"] == "EXCEPTION_RAISED"]
    assert raised["subject_id"] == exception_id


def test_an_exception_past_its_sla_escalates_once_on_its_route(sandbox: Sandbox, crm: Crm, worker_factory):
    worker_factory(CRM_ERP_ESCALATION_CHECK_S="0.5")
    raised = dt.datetime.now(dt.UTC) - dt.timedelta(hours=5)
    record = rejection_exception("opp-e1", raised)
    sandbox.produce_avro("sync.exceptions", EXCEPTION, [(b"opp-e1", record)])
    escalated = sandbox.decode(sandbox.read("sync.escalations", 1, timeout=60)[0])
    assert (escalated["route_team"], escalated["channel"], escalated["mode"]) == (
        "order-management",
        "#order-management",
        "TICKET",
    )
    assert escalated["exception_id"] == record["exception_id"] and escalated["overdue_minutes"] >= 59
    time.sleep(2)
    assert len(sandbox.everything("sync.escalations")) == 1  # once, not at every check


def cli(sandbox: Sandbox, *args: str) -> str:
    run = subprocess.run(
        [sys.executable, "-m", "app.cli", *args], env=sandbox.env(), capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_fixing_a_mapping_and_replaying_yields_exactly_one_order_and_a_complete_trace(
    sandbox: Sandbox, crm: Crm, worker_factory, tmp_path
):
    broken = tmp_path / "mappings"
    shutil.copytree(REPO_ROOT / "app" / "mappings" / "crm", broken)
    spec = broken / "opportunity.toml"
    # a bad mapping release: the amount read from the wrong column, which holds no numbers
    spec.write_text(spec.read_text().replace('column = "amount"', 'column = "currency_iso_code"'))
    worker = worker_factory(CRM_ERP_MAPPINGS_DIR=str(broken))
    crm.deal("opp-m1")
    sandbox.flush()
    dead = sandbox.collect("sync.dead-letter", lambda ms: len(ms) >= 3, 60, "the deal's header changes")
    assert {dict(m.headers())["x-reason"] for m in dead} == {b"MAPPING_ERROR"}
    assert sandbox.everything(COMMANDS, quiet=2) == []

    worker.stop()
    worker_factory()  # the fixed mapping (the repository's)
    preview = cli(sandbox, "replay", "--reason", "MAPPING_ERROR", "--dry-run")
    assert "opp-m1" in preview and sandbox.everything(COMMANDS, quiet=2) == []
    cli(sandbox, "replay", "--reason", "MAPPING_ERROR", "--operator", "alice")
    orders = sandbox.collect(COMMANDS, lambda ms: len(ms) >= 1, 90, "the order after the replay")
    command_id = sandbox.decode(orders[0])["envelope"]["command_id"]

    # by mistake, once more: the resolved exceptions are skipped unless forced, and forcing changes nothing.
    # The ledger's changelog shows the resolutions from the worker's next commit on (one commit
    # interval after the replay at most): an operator running it again that soon would replay again.
    deadline = time.monotonic() + 30
    while "already resolved" not in (preview := cli(sandbox, "replay", "--reason", "MAPPING_ERROR", "--dry-run")):
        assert time.monotonic() < deadline, preview
        time.sleep(1)
    cli(sandbox, "replay", "--reason", "MAPPING_ERROR", "--include-resolved", "--operator", "alice")
    sandbox.collect("sync.audit", lambda ms: sum(sandbox.decode(m)["action"] == "REPLAYED" for m in ms) >= 6, 60)
    commands = sandbox.everything(COMMANDS)
    assert {sandbox.decode(m)["envelope"]["command_id"] for m in commands} == {command_id}
    assert len(commands) == 1

    listing = json.loads(cli(sandbox, "exceptions", "list", "--json"))
    mapping = [e for e in listing if e["reason_code"] == "MAPPING_ERROR"]
    assert len(mapping) == 3 and all(e["status"] == "RESOLVED" for e in mapping)

    trace = json.loads(cli(sandbox, "trace", "opp-m1", "--json"))
    kinds = [e["kind"] for e in trace]
    assert kinds.index("DEAD-LETTER") < kinds.index("ERP-COMMAND")
    assert any(e["replay"] for e in trace)  # the replayed changes are marked as such
    print(cli(sandbox, "exceptions", "list"), cli(sandbox, "trace", "opp-m1"), sep="\n")  # for a person to read
