"""The CDC subjects belong to their producer: the service never writes there, and checks what it reads.

On the real registry: ``schemas register`` leaves every CDC subject alone; ``sources check`` and
the worker judge every writer version the producer registered; a version the mappings cannot read
makes ``/ready`` false, and its rows are quarantined with the reason while the partition flows on.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
import pytest
from confluent_kafka.admin import NewTopic
from confluent_kafka.schema_registry import Schema

from app.catalog import default_catalog
from app.client_config import admin_client
from app.contracts import default_index
from app.ops import schemas_admin, topics_admin
from app.sim import debezium as dbz
from tests.support.crm import Crm
from tests.support.kafka import Sandbox

pytestmark = pytest.mark.integration


def unreadable_envelope() -> dict:
    """The simulator's opportunity Envelope after a producer-side change the mapping cannot follow:
    ``amount`` became a boolean column."""
    schema = default_index().expanded("crm.public.opportunity.Envelope")
    row = next(f for f in schema["fields"] if f["name"] == "before")["type"][1]
    for field in row["fields"]:
        if field["name"] == "amount":
            field["type"] = ["null", "boolean"]
    return schema


def sources_check(sandbox: Sandbox) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "sources", "check"],
        env=sandbox.env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_schemas_register_never_registers_or_levels_a_cdc_subject(sandbox: Sandbox):
    sandbox.create_all()  # topics apply + schemas register, as `make run` does
    cdc_topics = [sandbox.topic(s.name) for s in default_catalog() if s.owned_by == "producer"]
    assert len(cdc_topics) == 11  # six Debezium tables, five Salesforce channels
    subjects = set(sandbox.registry.get_subjects())
    assert not {s for s in subjects if s.rsplit("-", 1)[0] in cdc_topics}
    registered = [subject for subject, _, _ in schemas_admin.subjects(sandbox.settings, default_catalog())]
    assert registered and not {s for s in registered if s.rsplit("-", 1)[0] in cdc_topics}


def test_topics_apply_creates_a_missing_cdc_topic_but_never_reconfigures_the_producers(sandbox: Sandbox):
    spec = next(s for s in default_catalog() if s.name == "crm.public.opportunity")
    name = sandbox.topic(spec.name)
    admin = admin_client(sandbox.settings)
    # the producer's own choice: compacted, 2 partitions
    new = NewTopic(name, 2, 1, config={"cleanup.policy": "compact"})
    for fut in admin.create_topics([new]).values():
        fut.result(30)
    assert topics_admin.check(sandbox.settings, [spec]) == []
    assert topics_admin.apply(sandbox.settings, [spec], say=lambda _: None) == []
    partitions, _, configs = topics_admin._describe(admin, [name])
    assert (partitions[name], configs[name]["cleanup.policy"]) == (2, "compact")
    other = next(s for s in default_catalog() if s.name == "crm.public.account")
    assert topics_admin.apply(sandbox.settings, [other], say=lambda _: None) == [
        f"{sandbox.topic(other.name)}: created"
    ]


def test_an_unreadable_writer_version_fails_the_check_and_readiness_and_its_rows_are_quarantined(
    sandbox: Sandbox, worker_factory
):
    sandbox.create_all()
    crm = Crm(sandbox)
    crm.reference_data()
    crm.deal("opp-1")
    sandbox.flush()
    ok = sources_check(sandbox)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    worker = worker_factory()
    web = f"http://127.0.0.1:{sandbox.settings.web_port}"

    # the producer registers an opportunity schema the mapping cannot read, and writes a row with it
    topic = sandbox.topic("crm.public.opportunity")
    bad = unreadable_envelope()
    bad_id = sandbox.registry.register_schema(f"{topic}-value", Schema(json.dumps(bad), "AVRO"))
    row = {**dbz.opportunity_row("opp-bad", "acc-1", "Closed Won", "250.00"), "amount": True}
    event = dbz.create("opportunity", {**row, "amount": None}, crm.lsn) | {"after": row}
    sandbox.produce_with_schema("crm.public.opportunity", b"opp-bad", bad_id, bad, event)

    check = sources_check(sandbox)
    assert check.returncode == 1
    assert f"{topic}-value v2 (id {bad_id}): UNREADABLE" in check.stdout
    assert "column 'amount': writer type boolean cannot become decimal (needed for amount)" in check.stdout

    deadline = time.monotonic() + 60
    while (ready := httpx.get(f"{web}/ready", timeout=10)).status_code == 200 and time.monotonic() < deadline:
        time.sleep(1)
    assert ready.status_code == 503
    assert ready.json()["unreadable_source_schemas"] == [
        f"{topic}-value v2 (id {bad_id}): column 'amount': writer type boolean cannot become decimal "
        "(needed for amount)"
    ]
    [dead] = sandbox.collect("sync.dead-letter", lambda ms: len(ms) >= 1, 60, "the quarantined row")
    headers = dict(dead.headers())
    assert headers["x-reason"] == b"SCHEMA_MISMATCH"
    [record] = [sandbox.decode(m) for m in sandbox.collect("sync.exceptions", lambda ms: len(ms) >= 1, 30)]
    assert record["correlation_id"] == "opp-bad"  # the row did not map, yet its quarantine names the deal

    # the partition flows on: a row written with the readable schema after the bad one still becomes an order
    crm.deal("opp-2")
    sandbox.flush()
    sandbox.collect(
        "erp.commands.sales-order", lambda ms: {m.key() for m in ms} >= {b"opp-1", b"opp-2"}, 90, "both creates"
    )
    assert worker.proc.poll() is None
