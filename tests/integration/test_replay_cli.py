"""``crm-erp-sync replay`` and ``exceptions`` as operators run them: subprocesses against a sandbox."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from app.contracts.models import model
from app.domain.outputs import EXCEPTION
from app.settings import REPO_ROOT
from tests.support.kafka import Sandbox

pytestmark = pytest.mark.integration

SOURCE = "crm.public.opportunity"
ORIGINAL_VALUE = b"\x00\x00\x00\x00\x2a\x0eoriginal avro body \xff"  # any bytes: replay never decodes them


def cli(sandbox: Sandbox, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=sandbox.env(),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def produce(sandbox: Sandbox, topic: str, key: bytes | None, value: bytes | None, headers=None) -> None:
    producer = Producer({"bootstrap.servers": sandbox.settings.kafka_bootstrap})
    producer.produce(topic, key=key, value=value, headers=headers or [])
    assert producer.flush(30) == 0


def dead_letter(sandbox: Sandbox, key: bytes, reason: str, partition: int, offset: int, **extra: bytes) -> str:
    """A dead letter as the worker writes it; returns its exception id."""
    source = sandbox.topic(SOURCE)
    exception_id = f"dlq:{source}/{partition}/{offset}"
    headers = [
        ("traceparent", b"00-4bf92f3577b34da6-00f067aa0ba902b7-01"),
        ("x-reason", reason.encode()),
        ("x-detail", b"stage: no canonical value for 'Negotiation/Weird'"),
        ("x-source-topic", source.encode()),
        ("x-source-partition", str(partition).encode()),
        ("x-source-offset", str(offset).encode()),
        ("x-quarantined-at", str(int(time.time() * 1000)).encode()),
        ("x-exception-id", exception_id.encode()),
        *extra.items(),
    ]
    produce(sandbox, sandbox.topic("sync.dead-letter"), key, ORIGINAL_VALUE, headers)
    return exception_id


def exception_json(exception_id: str, source: str, status_reason: str = "MAPPING_ERROR") -> dict:
    return {
        "exception_id": exception_id,
        "reason_code": status_reason,
        "exception_type": "MAPPING",
        "severity": "HIGH",
        "correlation_id": "opp-l1",
        "amount_at_risk": "990.00",
        "currency": "EUR",
        "customer_facing": False,
        "owner_team": "integration-platform",
        "sla_minutes": 240,
        "detail": "stage: no canonical value",
        "lineage": {
            "source_topic": source,
            "source_partition": 0,
            "source_offset": 5,
            "schema_id": None,
            "source_position": None,
            "source_ts": None,
        },
        "original_key": base64.b64encode(b"opp-l1").decode(),
        "original_value": base64.b64encode(ORIGINAL_VALUE).decode(),
        "original_headers": {"traceparent": "00-l1"},
        "raised_at": "2024-06-01T00:00:00+00:00",
        "replay_of": None,
        "replay_count": 0,
        "status": "DEAD_LETTERED",
    }


def ledger(sandbox: Sandbox, rows: dict[str, dict]) -> None:
    """A fake exception-ledger changelog, written as the worker's table would."""
    topic = f"{sandbox.settings.app_id}-exception-ledger-changelog"
    admin = AdminClient({"bootstrap.servers": sandbox.settings.kafka_bootstrap})
    for f in admin.create_topics([NewTopic(topic, 1, 1, config={"cleanup.policy": "compact"})]).values():
        f.result(30)
    for exception_id, row in rows.items():
        produce(sandbox, topic, exception_id.encode(), json.dumps(row).encode())


def test_replay_dry_run_then_replay_reinjects_the_original_bytes_audits_and_resolves(sandbox: Sandbox):
    sandbox.create_all()
    source = sandbox.topic(SOURCE)
    replayed_id = dead_letter(sandbox, b"opp-rp1", "MAPPING_ERROR", 1, 42, **{"x-replay-count": b"1"})
    other_id = dead_letter(sandbox, b"opp-rp2", "BAD_MAGIC_BYTE", 0, 7)

    dry = cli(sandbox, "replay", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would re-inject (nothing is produced)" in dry.stdout
    assert replayed_id in dry.stdout and other_id in dry.stdout and source in dry.stdout
    assert "opp-rp1" in dry.stdout and dry.stdout.rstrip().endswith("selected 2, would replay 2, skipped 0")
    assert sandbox.everything(SOURCE, quiet=2) == []
    assert sandbox.everything("sync.audit", quiet=1) == [] == sandbox.everything("sync.exception-resolutions", quiet=1)

    run = cli(sandbox, "replay", "--reason", "MAPPING_ERROR", "--operator", "it-ops")
    assert run.returncode == 0, run.stderr
    assert "selected 1, replayed 1, skipped 0" in run.stdout, run.stdout

    [msg] = sandbox.read(SOURCE, 1)
    assert (msg.key(), msg.value()) == (b"opp-rp1", ORIGINAL_VALUE)
    headers = dict(msg.headers())
    replay_id = headers["x-replay-id"].decode()
    assert len(replay_id) == 32 and int(replay_id, 16) >= 0  # uuid4 hex
    assert headers["traceparent"] == b"00-4bf92f3577b34da6-00f067aa0ba902b7-01"
    assert headers["x-replay-of"] == replayed_id.encode() and headers["x-replay-operator"] == b"it-ops"
    assert headers["x-replay-count"] == b"2" and headers["x-original-coordinates"] == f"{source}/1/42".encode()
    assert not {"x-reason", "x-detail", "x-source-topic", "x-quarantined-at", "x-exception-id"} & set(headers)
    assert f"replayed {replayed_id} -> {source} as {replay_id}" in run.stdout

    audit = sandbox.decode(sandbox.read("sync.audit", 1)[0])
    assert (audit["action"], audit["actor"], audit["actor_kind"]) == ("REPLAYED", "it-ops", "OPERATOR")
    assert (audit["subject_id"], audit["causation_ids"], audit["topic"]) == (replayed_id, [replayed_id], source)
    assert replay_id in audit["detail"]
    res_msg = sandbox.read("sync.exception-resolutions", 1)[0]
    resolution = sandbox.decode(res_msg)
    assert res_msg.key() == replayed_id.encode()
    assert (resolution["exception_id"], resolution["resolution"], resolution["resolved_by"]) == (
        replayed_id,
        "REPLAYED",
        "it-ops",
    )
    assert resolution["note"] == f"replayed as {replay_id}"
    assert len(sandbox.everything(SOURCE, quiet=1)) == 1  # the other reason stayed in the dead-letter topic


def test_replay_skips_what_the_ledger_resolved_and_replays_exception_records(sandbox: Sandbox):
    sandbox.create_all()
    source = sandbox.topic(SOURCE)
    done_id = dead_letter(sandbox, b"opp-d1", "MAPPING_ERROR", 2, 3)
    open_id = dead_letter(sandbox, b"opp-d2", "MAPPING_ERROR", 2, 4)
    ledger(
        sandbox,
        {
            done_id: {"exception": exception_json(done_id, source), "status": "RESOLVED", "resolution": None},
            open_id: {"exception": exception_json(open_id, source), "status": "DEAD_LETTERED", "resolution": None},
        },
    )
    run = cli(sandbox, "replay", "--key", "opp-d1", "--key", "opp-d2", "--max", "5", "--rate", "20")
    assert run.returncode == 0, run.stderr
    assert f"skip {done_id}: already resolved" in run.stdout
    assert "selected 1, replayed 1, skipped 1 (already resolved: 1)" in run.stdout
    [msg] = sandbox.read(SOURCE, 1)
    assert msg.key() == b"opp-d2" and dict(msg.headers())["x-replay-of"] == open_id.encode()
    audit = sandbox.read("sync.audit", 1)[0]
    assert audit.key() == b"opp-l1"  # the ledger knew the correlation id

    record = exception_json("opp-x1:MAPPING_ERROR:lsn:7", source)
    record.update(original_key=b"opp-x1", original_value=ORIGINAL_VALUE, correlation_id="opp-x1")
    validation = exception_json("opp-x2:NO_LINES:open", source, "NO_LINES")
    validation.update(original_key=None, original_value=None)  # nothing to replay: not even a candidate
    records = [model(EXCEPTION).model_validate(r).to_avro() for r in (record, validation)]
    sandbox.produce_avro("sync.exceptions", EXCEPTION, [(b"opp-x1", records[0]), (b"opp-x2", records[1])])
    dry = cli(sandbox, "replay", "--from", "exceptions", "--dry-run")
    assert dry.returncode == 0 and "selected 1, would replay 1, skipped 0" in dry.stdout, dry.stdout + dry.stderr
    by_id = cli(sandbox, "replay", "--from", "exceptions", "--id", "opp-x1:MAPPING_ERROR:lsn:7")
    assert by_id.returncode == 0, by_id.stderr
    assert "selected 1, replayed 1, skipped 0" in by_id.stdout
    msgs = sandbox.read(SOURCE, 2)
    replay = next(m for m in msgs if m.key() == b"opp-x1")
    assert replay.value() == ORIGINAL_VALUE and dict(replay.headers())["traceparent"] == b"00-l1"


def test_exceptions_list_show_and_resolve_read_the_ledger(sandbox: Sandbox):
    sandbox.create_all()
    source = sandbox.topic(SOURCE)
    resolution = {"exception_id": "e-done", "resolved_at": "2024-06-01T01:00:00+00:00", "resolved_by": "ana"}
    ledger(
        sandbox,
        {
            "e-open": {"exception": exception_json("e-open", source), "status": "OPEN", "resolution": None},
            "e-done": {"exception": exception_json("e-done", source), "status": "RESOLVED", "resolution": resolution},
        },
    )
    listed = cli(sandbox, "exceptions", "list", "--open", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [e["exception_id"] for e in json.loads(listed.stdout)] == ["e-open"]
    table = cli(sandbox, "exceptions", "list")
    assert table.returncode == 0 and "990.00 EUR" in table.stdout and "2 exception(s), 1 not resolved" in table.stdout
    shown = cli(sandbox, "exceptions", "show", "e-open")
    assert shown.returncode == 0 and "original key   (6 bytes, utf-8) opp-l1" in shown.stdout
    assert cli(sandbox, "exceptions", "show", "nope").returncode == 1

    again = cli(sandbox, "exceptions", "resolve", "e-done", "--note", "x")
    assert again.returncode == 1 and "already RESOLVED by ana" in again.stderr
    unknown = cli(sandbox, "exceptions", "resolve", "e-nope", "--note", "x")
    assert unknown.returncode == 1 and "'e-nope' is not in the exception ledger" in unknown.stderr
    ok = cli(sandbox, "exceptions", "resolve", "e-open", "--note", "fixed the stage mapping", "--operator", "bob")
    assert ok.returncode == 0, ok.stderr
    res = sandbox.decode(sandbox.read("sync.exception-resolutions", 1)[0])
    assert (res["exception_id"], res["resolution"], res["resolved_by"], res["note"]) == (
        "e-open",
        "MANUAL",
        "bob",
        "fixed the stage mapping",
    )
    audit_msg = sandbox.read("sync.audit", 1)[0]
    audit = sandbox.decode(audit_msg)
    assert (audit["action"], audit["actor_kind"], audit["subject_id"]) == ("EXCEPTION_RESOLVED", "OPERATOR", "e-open")
    assert audit_msg.key() == b"opp-l1"


def test_exceptions_resolve_refuses_an_unknown_id(sandbox: Sandbox):
    sandbox.create_all()
    result = cli(sandbox, "exceptions", "resolve", "dlq:no/such/1", "--note", "n")
    assert result.returncode == 1
    assert "refused" in result.stderr and "'dlq:no/such/1' is unknown" in result.stderr
    assert sandbox.everything("sync.exception-resolutions", quiet=1) == []


def _ledger_rows(sandbox: Sandbox, done, timeout: float = 90.0) -> dict[str, dict]:
    """``exceptions list --json`` by id, polled until ``done(rows)`` holds."""
    deadline = time.monotonic() + timeout
    rows: dict[str, dict] = {}
    while time.monotonic() < deadline:
        listed = cli(sandbox, "exceptions", "list", "--json")
        if listed.returncode == 0:
            rows = {e["exception_id"]: e for e in json.loads(listed.stdout)}
            if done(rows):
                return rows
        time.sleep(1)
    raise AssertionError(f"ledger not as expected within {timeout}s: {rows}")


def test_with_the_worker_a_replay_closes_the_exception_and_a_failing_replay_raises_a_linked_one(
    sandbox: Sandbox, worker_factory
):
    sandbox.create_all()
    worker_factory()
    sandbox.produce_raw(SOURCE, b"opp-w1", b"\x09still not avro")
    first = dict(sandbox.read("sync.dead-letter", 1)[0].headers())["x-exception-id"].decode()
    rows = _ledger_rows(sandbox, lambda r: first in r)
    assert rows[first]["status"] == "DEAD_LETTERED" and rows[first]["reason_code"] == "BAD_MAGIC_BYTE"

    run = cli(sandbox, "replay", "--id", first, "--operator", "it-ops")
    assert run.returncode == 0 and "selected 1, replayed 1, skipped 0" in run.stdout, run.stdout + run.stderr
    # the worker fails the same bytes again: a new dead letter and exception, linked to the first
    dead = sandbox.read("sync.dead-letter", 2)
    second_headers = dict(next(m for m in dead if m.headers() and dict(m.headers()).get("x-replay-of")).headers())
    second = second_headers["x-exception-id"].decode()
    assert second != first and second_headers["x-replay-count"] == b"1"
    rows = _ledger_rows(sandbox, lambda r: r.get(first, {}).get("status") == "RESOLVED" and second in r)
    assert rows[first]["resolution"]["resolution"] == "REPLAYED"
    assert rows[first]["resolution"]["resolved_by"] == "it-ops"
    assert (rows[second]["replay_of"], rows[second]["replay_count"], rows[second]["status"]) == (
        first,
        1,
        "DEAD_LETTERED",
    )

    again = cli(sandbox, "replay", "--id", first)
    assert again.returncode == 0 and "selected 0, replayed 0, skipped 1 (already resolved: 1)" in again.stdout
