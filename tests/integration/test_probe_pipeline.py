"""The skeleton pipeline on the real broker and registry, with the worker as a subprocess."""

from __future__ import annotations

import datetime as dt
import signal
import time
from decimal import Decimal

import pytest

from tests.support.kafka import Sandbox

pytestmark = pytest.mark.integration

PROBE = "io.crmerpsync.sync.PipelineProbe"
TOPICS = ("sync.probe", "sync.probe-results", "sync.dead-letter")


def probes(ids):
    now = dt.datetime.now(dt.UTC)
    return [(i.encode(), {"probe_id": i, "amount": Decimal("1234.56"), "currency": "EUR", "sent_at": now}) for i in ids]


def test_avro_probe_is_answered_with_avro_result(sandbox: Sandbox, worker_factory):
    sandbox.create(*TOPICS)
    sandbox.produce_avro("sync.probe", PROBE, probes(["p-1", "p-2"]))
    worker_factory()

    results = [sandbox.decode(m) for m in sandbox.read("sync.probe-results", 2)]

    assert sorted(r["probe_id"] for r in results) == ["p-1", "p-2"]
    for r in results:
        assert r["amount"] == Decimal("1234.56") and r["currency"] == "EUR"
        assert (
            r["writer_schema_id"]
            == sandbox.registry.get_latest_version(sandbox.topic("sync.probe") + "-value").schema_id
        )
        assert r["processed_at"] >= r["sent_at"]


def test_poison_probe_is_dead_lettered_and_the_next_probe_still_flows(sandbox: Sandbox, worker_factory):
    # a quarantine is also an exception record, which flows on into the exception ledger: the
    # whole catalog must exist (a send to a missing topic holds the producer up for everything)
    sandbox.create_all()
    sandbox.produce_raw("sync.probe", b"p-x", b"\x07not avro at all")
    sandbox.produce_raw("sync.probe", b"p-x", b"\x00\x7f\xff\xff\xfe\x02")  # unknown schema id
    sandbox.produce_avro("sync.probe", PROBE, probes(["p-x"]))
    worker_factory()

    dead = sandbox.read("sync.dead-letter", 2)
    result = sandbox.decode(sandbox.read("sync.probe-results", 1)[0])

    reasons = sorted(dict(m.headers())["x-reason"].decode() for m in dead)
    assert reasons == ["BAD_MAGIC_BYTE", "UNKNOWN_SCHEMA_ID"]
    assert {m.value() for m in dead} == {b"\x07not avro at all", b"\x00\x7f\xff\xff\xfe\x02"}
    headers = dict(dead[0].headers())
    assert headers["x-source-topic"].decode() == sandbox.topic("sync.probe")
    assert int(headers["x-source-offset"]) in (0, 1)
    assert result["probe_id"] == "p-x"


def test_sigkill_mid_stream_loses_no_probe(sandbox: Sandbox, worker_factory):
    sandbox.create(*TOPICS)
    ids = [f"p-{i}" for i in range(3000)]
    sandbox.produce_avro("sync.probe", PROBE, probes(ids[:1500]))
    worker = worker_factory()
    sandbox.read("sync.probe-results", 200, timeout=60)  # the worker is mid-stream
    worker.kill(signal.SIGKILL)
    sandbox.produce_avro("sync.probe", PROBE, probes(ids[1500:]))
    time.sleep(sandbox.settings.session_timeout_s + 2)  # restart once the broker has noticed the death
    worker_factory()

    seen: set[str] = set()
    decoded = 0

    def all_answered(msgs) -> bool:
        nonlocal decoded
        seen.update(sandbox.decode(m)["probe_id"] for m in msgs[decoded:])
        decoded = len(msgs)
        return seen == set(ids)

    sandbox.collect("sync.probe-results", all_answered, timeout=120, what="an answer to every probe")
    assert seen == set(ids)  # at-least-once: every probe answered, redeliveries allowed
