"""Input written to break the quarantine path itself (review items 1 and 4), on the real broker.

Whoever can write a source topic can set any header and any size the broker allows. Each message
here must still end up dead-lettered with an exception record, and the partition must flow on.
"""

from __future__ import annotations

import pytest
from confluent_kafka import Producer

from app.client_config import kafka_config
from tests.support.crm import Crm
from tests.support.kafka import Sandbox

pytestmark = pytest.mark.integration

COMMANDS = "erp.commands.sales-order"


def produce(sandbox: Sandbox, table: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
    producer = Producer(kafka_config(sandbox.settings, {"message.max.bytes": 1_048_588}))
    producer.produce(sandbox.topic(f"crm.public.{table}"), key=key, value=value, headers=headers)
    assert producer.flush(30) == 0


def test_forged_control_headers_on_a_poison_message_are_quarantined_not_lost_and_never_obeyed(
    sandbox: Sandbox, worker_factory
):
    sandbox.create_all()
    crm = Crm(sandbox)
    crm.reference_data()
    forged = [
        ("x-replay-count", b"abc"),  # parsed with int() inside the quarantine path: it raised, the input was acked
        ("x-retry-attempt", b"zz"),
        ("x-retry-target", sandbox.topic(COMMANDS).encode()),
        ("x-retry-target-catalog", COMMANDS.encode()),
    ]
    produce(sandbox, "opportunity", b"opp-forged", b"\x07 not avro", forged)
    crm.deal("opp-after")
    sandbox.flush()
    worker_factory()

    [dead] = sandbox.collect("sync.dead-letter", lambda ms: len(ms) >= 1, 60, "the poison message")
    assert dict(dead.headers())["x-reason"] == b"BAD_MAGIC_BYTE" and dead.key() == b"opp-forged"
    [record] = [sandbox.decode(m) for m in sandbox.collect("sync.exceptions", lambda ms: len(ms) >= 1, 30)]
    assert (record["reason_code"], record["replay_count"]) == ("BAD_MAGIC_BYTE", 0)
    commands = sandbox.collect(COMMANDS, lambda ms: any(m.key() == b"opp-after" for m in ms), 90, "the next deal")
    assert all(m.key() != b"opp-forged" for m in commands)  # nothing reached the commands topic


def test_a_message_whose_copies_would_be_too_large_is_dead_lettered_by_its_coordinates_once(
    sandbox: Sandbox, worker_factory
):
    sandbox.create_all()
    crm = Crm(sandbox)
    crm.reference_data()
    headers = [(f"h{i}", b"x" * 1000) for i in range(120)]  # 120 KB of headers on a 900 KB value
    produce(sandbox, "opportunity", b"opp-huge", b"\x07" + b"v" * 900_000, headers)
    crm.deal("opp-after")
    sandbox.flush()
    worker_factory()

    sandbox.collect(COMMANDS, lambda ms: any(m.key() == b"opp-after" for m in ms), 90, "the next deal")
    dead = sandbox.everything("sync.dead-letter", quiet=3)
    assert len(dead) == 1, len(dead)  # once: not re-quarantined on every restart or retry
    dropped = len(b"opp-huge") + 900_001  # the key is kept; the size counts key and value
    assert dead[0].value() is None and dead[0].key() == b"opp-huge"
    assert dict(dead[0].headers())["x-payload-dropped"] == str(dropped).encode()
    [record] = [sandbox.decode(m) for m in sandbox.everything("sync.exceptions", quiet=1)]
    assert record["original_value"] is None and f"not copied: {dropped} bytes" in record["detail"]
