"""Fault injection on the real platform: crashes, a broker restart, a registry outage, a bad-input corpus.

Each test drives a stream through worker subprocesses and checks the guarantees of the README
("The guarantee: effective-once commands"): every closed-won deal gets exactly one distinct create
command id (re-emits of the same id are allowed after a crash: at-least-once), no deal lacks its
create, nothing is left unprocessed, and whatever cannot be processed is quarantined with a reason.
"""

from __future__ import annotations

import io
import json
import random
import signal
import threading
import time
from collections import Counter, defaultdict
from datetime import date
from decimal import Decimal
from urllib.parse import urlparse

import fastavro
import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema

from app.client_config import kafka_config
from app.contracts import default_index
from app.serde import wire
from app.serde.avro import AvroEncoder
from app.sim import debezium as dbz
from app.sim import erp, workload
from tests.integration.test_opportunity_to_order import COMMANDS, assert_one_create_per_deal, kinds
from tests.support.crm import Crm
from tests.support.faults import CRM_TOPICS, Follower, PrivateBroker, cdc_feed, unprocessed, wait_all_committed
from tests.support.kafka import Sandbox, free_port, worker
from tests.support.proxy import Proxy

pytestmark = pytest.mark.integration

SEED = 20261128
SESSION_TIMEOUT_S = 6  # a dead worker's partitions move this soon; restarts wait it out (README, known problems)
FAST_FAILOVER = {"CRM_ERP_SESSION_TIMEOUT_S": str(SESSION_TIMEOUT_S)}
INPUTS = [*CRM_TOPICS, "sync.deal-changes"]  # what the worker group consumes from the CDC on


def now_ms() -> int:
    return int(time.time() * 1000)


def duplicates(sandbox: Sandbox, msgs) -> int:
    """Messages on the command topic that repeat a command id already seen (at-least-once re-emits)."""
    return sum(n - 1 for n in Counter(cid for _, cid, _ in kinds(sandbox, msgs)).values())


# --- 1. kill -9 at random points ----------------------------------------------------------------


@pytest.mark.timeout(540)
def test_kill_9_at_seeded_random_points_of_a_20k_event_stream_loses_and_splits_nothing(
    sandbox: Sandbox, worker_factory
):
    rng = random.Random(SEED)
    deals = 4000
    sandbox.create_all()
    feed = cdc_feed(sandbox)
    lsn = dbz.Lsn(ts_ms=now_ms())
    feed.produce(workload.reference_data(lsn))
    stream = list(workload.deals(lsn, deals, seed=SEED, prefix="opp-k"))
    assert len(stream) == deals * workload.EVENTS_PER_DEAL  # 20 000 CDC events
    head = len(stream) * 3 // 4
    feed.produce(iter(stream[:head]))
    commands = Follower(sandbox, COMMANDS)
    try:
        w = worker_factory(**FAST_FAILOVER)
        tail = threading.Thread(target=feed.produce, args=(iter(stream[head:]),))  # the rest arrives meanwhile
        tail.start()
        kill_points = sorted(rng.sample(range(deals // 10, deals * 9 // 10), 3))
        for n in kill_points:
            commands.wait_keys(n, timeout=240, what=f"(deals with a command, before kill at {n})")
            w.kill(signal.SIGKILL)
            time.sleep(SESSION_TIMEOUT_S + 2)  # an immediate restart can stall (README, known problems)
            w = worker_factory(**FAST_FAILOVER)
        tail.join(120)

        opps = [f"opp-k-{d}" for d in range(deals)]
        assert_one_create_per_deal(sandbox, opps, timeout=360)
        wait_all_committed(sandbox, CRM_TOPICS, timeout=60)  # every CDC event consumed and committed
        commands.wait_keys(deals, timeout=30)
        re_emits = duplicates(sandbox, commands.messages)
        # sync.deal-changes is internal: after each restart the worker re-reads it from its last commit (which
        # lags under this load) and re-emits recorded outputs; it is measured here, not waited for
        internal = sum(unprocessed(sandbox, ["sync.deal-changes"]).values())
        print(
            f"kills at {kill_points} deals; {len(commands.messages)} commands, {re_emits} re-emits of an id; "
            f"sync.deal-changes still {internal} behind its end"
        )
    finally:
        commands.close()


# --- 2. a broker restart -------------------------------------------------------------------------


@pytest.fixture
def private_broker(platform, tmp_path):
    broker = PrivateBroker(platform, tmp_path / "private-platform")
    broker.start()
    yield broker
    broker.stop()


@pytest.mark.timeout(240)
def test_a_broker_restart_mid_stream_is_survived_without_an_operator_and_without_loss(private_broker, tmp_path):
    box = Sandbox(private_broker.settings, tmp_path)  # topics on the private broker, schemas in the shared registry
    box.create_all()
    feed = cdc_feed(box)
    lsn = dbz.Lsn(ts_ms=now_ms())
    deals = 600
    feed.produce(workload.reference_data(lsn))
    feed.produce(workload.deals(lsn, deals, seed=SEED + 1, prefix="opp-b"))
    commands = Follower(box, COMMANDS)
    w = worker(box, tmp_path / "worker.log", **FAST_FAILOVER).start()
    try:
        commands.wait_keys(deals // 4, timeout=120, what="before the broker restart")
        private_broker.stop()  # SIGTERM: the broker shuts down in a controlled way, as in a rolling restart
        time.sleep(5)
        private_broker.start()
        assert_one_create_per_deal(box, [f"opp-b-{d}" for d in range(deals)], timeout=180)
        wait_all_committed(box, INPUTS, timeout=60)
        assert w.proc.poll() is None, f"the worker exited during the broker restart:\n{w.tail()}"
        print(f"{len(commands.messages)} commands, {duplicates(box, commands.messages)} re-emits")
    finally:
        commands.close()
        w.kill()


# --- 3. the registry unavailable for a while ------------------------------------------------------


def evolved_envelope(sandbox: Sandbox, table: str) -> AvroEncoder:
    """A new writer schema for ``table``'s topic (one optional field more), registered: an id no worker has seen."""
    schema = default_index().expanded(f"crm.public.{table}.Envelope")
    schema["fields"].append({"name": "fault_test_note", "type": ["null", "string"], "default": None})
    subject = f"{sandbox.topic(f'crm.public.{table}')}-value"
    return AvroEncoder(sandbox.registry.register_schema(subject, Schema(json.dumps(schema), "AVRO")), schema)


@pytest.mark.timeout(240)
def test_a_registry_outage_mid_stream_backs_off_resumes_and_drops_nothing(sandbox: Sandbox, worker_factory):
    """The single-message case is test_exception_ops; here 200 deals, a 15 s outage in the middle, and the
    outage hits a writer schema the worker has not cached yet (an evolved envelope), so it matters.
    A poison message sent as the outage starts is quarantined during it: the exception record's
    encoder was resolved when the worker started, before any exception (outputs.warm_encoders)."""
    sandbox.create_all()
    feed = cdc_feed(sandbox)
    lsn = dbz.Lsn(ts_ms=now_ms())
    feed.produce(workload.reference_data(lsn))
    registry = urlparse(sandbox.settings.registry_url)
    proxy = Proxy(registry.hostname, registry.port)
    commands = Follower(sandbox, COMMANDS)
    try:
        via_proxy = sandbox.settings.registry_url.replace(f":{registry.port}", f":{proxy.port}")
        # tiers long enough to outlast the outage: 1.4 s in place, then 5 s, 10 s, 30 s before a dead letter
        w = worker_factory(CRM_ERP_REGISTRY_URL=via_proxy, CRM_ERP_RETRY_DELAYS="10s=5,1m=10,10m=30")
        feed.produce(workload.deals(lsn, 100, seed=SEED + 2, prefix="opp-r"))
        commands.wait_keys(100, timeout=90, what="before the outage")

        proxy.down = True
        outage = time.monotonic()
        sandbox.produce_raw("crm.public.opportunity", b"poison", b"\x01not avro")
        feed.encoders["opportunity"] = (feed.encoders["opportunity"][0], evolved_envelope(sandbox, "opportunity"))
        feed.produce(workload.deals(lsn, 100, seed=SEED + 3, prefix="opp-s"))
        dead = sandbox.collect("sync.dead-letter", lambda msgs: len(msgs) >= 1, timeout=12, what="the poison message")
        time.sleep(max(0.0, 15 - (time.monotonic() - outage)))
        held_back = 200 - len(commands.keys)
        proxy.down = False

        assert held_back > 0, "the outage held nothing back: it did not test anything"
        opps = [f"opp-r-{d}" for d in range(100)] + [f"opp-s-{d}" for d in range(100)]
        assert_one_create_per_deal(sandbox, opps, timeout=150)
        assert [(m.key(), dict(m.headers())["x-reason"]) for m in dead] == [(b"poison", b"BAD_MAGIC_BYTE")]
        assert len(sandbox.everything("sync.dead-letter", quiet=2)) == 1  # the poison message alone
        backoffs = w.log.read_text().count("transient REGISTRY_UNAVAILABLE; retrying in")
        assert backoffs >= 2, "the worker never backed off: the outage did not reach it"
        tiered = sandbox.everything("sync.retry.10s", quiet=1)  # each registry call may take seconds to fail
        assert {dict(m.headers())["x-reason"] for m in tiered} <= {b"REGISTRY_UNAVAILABLE"}
        print(f"held back by the outage: {held_back} deals; {backoffs} backoffs in place, {len(tiered)} to a tier")
    finally:
        commands.close()
        proxy.close()


# --- 4. two workers, then one killed: drift alerts are not raised again --------------------------

EVENTS = "erp.events.sales-order"
ERP_EVENT = "io.crmerpsync.erp.events.ErpOrderEvent"


def send_erp(sandbox: Sandbox, records: list[dict]) -> None:
    sandbox.produce_avro(EVENTS, ERP_EVENT, [(r["correlation_id"].encode(), r) for r in records])


def alerts_logged(w, state: str) -> set[str]:
    """Alert ids a worker logged as emitted in ``state`` (its JSON log's 'drift alert …' lines)."""
    found = set()
    for line in w.log.read_text(errors="replace").splitlines():
        if f"drift alert {state} " in line:
            found.add(json.loads(line)["message"].split()[4].rstrip(":"))
    return found


@pytest.mark.timeout(300)
def test_two_workers_then_one_killed_partitions_move_tables_recover_no_alert_is_raised_again(
    sandbox: Sandbox, worker_factory, tmp_path
):
    sandbox.create_all()
    crm = Crm(sandbox)
    crm.reference_data()
    opps = [f"opp-a{i}" for i in range(24)]
    for opp in opps:
        crm.deal(opp)
    sandbox.flush()
    first = worker_factory(**FAST_FAILOVER)
    second = worker_factory(
        CRM_ERP_DATA_DIR=str(tmp_path / "second"), CRM_ERP_WEB_PORT=str(free_port()), **FAST_FAILOVER
    )
    assert_one_create_per_deal(sandbox, opps, timeout=120)

    # every order invoiced before the ERP reports its acceptance: one lifecycle-gap alert per deal
    send_erp(sandbox, [erp.invoiced(opp, f"INV-{opp}-1", Decimal("250.00"), "EUR") for opp in opps])
    gap = {opp: f"{opp}:gap:not-accepted:1" for opp in opps}

    def records(msgs) -> list[dict]:
        return [sandbox.decode(m) for m in msgs]

    def opened(msgs) -> bool:
        return {a["alert_id"] for a in records(msgs) if a["state"] == "OPEN"} >= set(gap.values())

    sandbox.collect("sync.drift-alerts", opened, 90, "an open gap alert per deal")
    by_worker = {w: alerts_logged(w, "OPEN") & set(gap.values()) for w in (first, second)}
    assert all(by_worker.values()), f"both workers must own deals: {by_worker}"
    victim, survivor = (first, second) if len(by_worker[first]) >= len(by_worker[second]) else (second, first)
    time.sleep(4)  # past Faust's commit interval: nothing in flight when the victim dies
    victim.kill(signal.SIGKILL)
    time.sleep(SESSION_TIMEOUT_S + 4)  # the group notices, the survivor takes every partition

    # the survivor has restored the victim's deals from the changelogs: a second invoice re-judges every
    # deal while the gap persists (a deal restored without its alert would open a new one), then the
    # acceptance closes the gap
    send_erp(sandbox, [erp.invoiced(opp, f"INV-{opp}-2", Decimal("0.00"), "EUR") for opp in opps])
    send_erp(sandbox, [erp.accepted(opp, Decimal("250.00"), "EUR", f"SO-{opp}") for opp in opps])

    def resolved(msgs) -> bool:
        return {a["alert_id"] for a in records(msgs) if a["state"] == "RESOLVED"} >= set(gap.values())

    sandbox.collect("sync.drift-alerts", resolved, 120, "every gap alert resolved")
    alerts = records(sandbox.everything("sync.drift-alerts"))
    per_deal = defaultdict(list)
    for a in alerts:
        per_deal[a["correlation_id"]].append((a["alert_id"], a["state"]))
    for opp in opps:  # no new alert id; resolved (a re-emit of the same RESOLVED is at-least-once)
        assert set(per_deal[opp]) == {(gap[opp], "OPEN"), (gap[opp], "RESOLVED")}, (opp, per_deal[opp])
    opens = Counter(a["alert_id"] for a in alerts if a["state"] == "OPEN")  # aggregate parity alerts too
    assert all(n == 1 for n in opens.values()), {k: n for k, n in opens.items() if n > 1}
    resolved_twice = sum(n - 1 for n in Counter(a["alert_id"] for a in alerts if a["state"] == "RESOLVED").values())
    moved = by_worker[victim]
    assert moved <= alerts_logged(survivor, "RESOLVED"), "the survivor resolved the victim's alerts"
    print(f"victim owned {len(moved)} of {len(opps)} deals, resolved by the survivor; {resolved_twice} re-emits")


# --- 5. a bad-input corpus, interleaved with good deals -------------------------------------------

BIG = 400_000  # a 400 kB name: every message it travels in stays well under 1 MB
HUGE = 1_000_000  # a 1 MB name: the CDC message (1 000 3xx bytes) is under the broker's limit (1 048 588)


def _deal(lsn: dbz.Lsn, opp: str, lines: list[tuple[str, Decimal, Decimal]], amount=None, **header) -> list:
    """(table, row id, envelope) of a deal opened, its lines, then closed won with ``header`` (acc-1, EUR)."""
    out, rows = [], []
    for i, (product, qty, unit) in enumerate(lines):
        row = dbz.line_row(f"{opp}-l{i}", opp, product, qty, unit)
        rows.append(row)
        out.append(("opportunity_line_item", row["id"], dbz.create("opportunity_line_item", row, lsn)))
    total = sum((r["total_price"] for r in rows), Decimal(0)) if amount is None else amount
    opened = dbz.opportunity_row(opp, "acc-1", "Prospecting", total)
    won = dbz.opportunity_row(opp, "acc-1", "Closed Won", total, **header)
    return [
        ("opportunity", opp, dbz.create("opportunity", opened, lsn)),
        *out,
        ("opportunity", opp, dbz.update("opportunity", None, won, lsn)),  # no old row (replica identity default)
    ]


GOOD_LINES = [("prod-1", Decimal(2), Decimal("110.00")), ("prod-2", Decimal(1), Decimal("120.00"))]


class Corpus:
    """Produces good deals and bad records interleaved, remembering what each bad record is."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sb = sandbox
        self.feed = cdc_feed(sandbox)
        self.lsn = dbz.Lsn(ts_ms=now_ms())
        # a producer allowed to send the huge records (the broker takes up to 1 MiB + 12 bytes)
        self.producer = Producer(kafka_config(sandbox.settings, {"linger.ms": 5, "message.max.bytes": 1_048_576}))
        self.raw_values: dict[str, bytes] = {}  # bad record name -> the exact value bytes produced
        self.good: list[str] = []

    def encoded(self, table: str, row_id: str, envelope: dict) -> tuple[bytes, bytes]:
        kenc, venc = self.feed.encoders[table]
        return kenc.encode(dbz.key(row_id)), venc.encode(envelope)

    def send(self, table: str, key: bytes | None, value: bytes | None) -> None:
        self.producer.produce(self.sb.topic(f"crm.public.{table}"), key=key, value=value)
        self.producer.poll(0)

    def deal(self, opp: str, lines=GOOD_LINES, amount=None, **header) -> None:
        for table, row_id, envelope in _deal(self.lsn, opp, lines, amount, **header):
            self.send(table, *self.encoded(table, row_id, envelope))

    def good_deals(self, n: int) -> None:
        for _ in range(n):
            opp = f"opp-good-{len(self.good)}"
            self.deal(opp)
            self.good.append(opp)

    def raw(self, name: str, table: str, key: bytes | None, value: bytes | None) -> None:
        self.raw_values[name] = value
        self.send(table, key, value)

    def flush(self) -> None:
        assert self.producer.flush(60) == 0


@pytest.fixture(scope="module")
def corpus_run(platform, tmp_path_factory):
    """One worker through the whole corpus; the tests below each check one part of the outcome."""
    tmp = tmp_path_factory.mktemp("corpus")
    sandbox = Sandbox(platform, tmp)
    sandbox.create_all()
    c = Corpus(sandbox)
    for table, row_id, envelope in workload.reference_data(c.lsn, accounts=2, products=5):  # acc-1, prod-1, ...
        c.send(table, *c.encoded(table, row_id, envelope))
    w = worker(sandbox, tmp / "worker.log").start()
    try:
        key, value = c.encoded("opportunity", "opp-bad-frame", dbz.create(
            "opportunity", dbz.opportunity_row("opp-bad-frame", "acc-1", "Prospecting", "1.00"), c.lsn))  # fmt: skip
        schema = fastavro.parse_schema(default_index().expanded("crm.public.opportunity.Envelope"))
        cut = value[: wire.HEADER_SIZE + (len(value) - wire.HEADER_SIZE) // 2]
        with pytest.raises(Exception):  # noqa: B017 - the truncated body really does not decode
            fastavro.schemaless_reader(io.BytesIO(cut[wire.HEADER_SIZE :]), schema, None)

        c.good_deals(5)
        c.raw("truncated", "opportunity", key, cut)
        c.raw("bad-magic", "opportunity", key, b"\x01" + value[1:])
        c.good_deals(5)
        c.raw("unknown-schema-id", "opportunity", key, wire.header(2**31 - 7) + value[wire.HEADER_SIZE :])
        c.raw("not-avro-at-all", "opportunity_line_item", b"opp-bad-text", b"this is not a CDC event")
        c.good_deals(5)
        c.deal("opp-bad-negative-qty", [("prod-1", Decimal(-2), Decimal("110.00"))])
        c.deal("opp-bad-amount-1e15", amount=Decimal("1000000000000000.00"))
        c.deal("opp-bad-price-1e15", [("prod-1", Decimal(1), Decimal("1000000000000000.00"))])
        c.deal("opp-bad-currency", currency="XYZ")
        c.deal("opp-bad-close-9999", close_date=date(9999, 12, 31))
        c.good_deals(5)
        c.deal("opp-big-name", name="n" * BIG)
        c.good_deals(5)
        # keys: garbage bytes, an 8-byte integer (framed like a schema id 0), none at all
        for name, k in (
            ("garbage-key", b"\xde\xad\xbe\xef\x01"),
            ("int-key", (42).to_bytes(8, "big")),
            ("null-key", None),
        ):
            opp = f"opp-key-{name}"
            for table, row_id, envelope in _deal(c.lsn, opp, GOOD_LINES):
                _, v = c.encoded(table, row_id, envelope)
                c.raw(name, table, k, v)  # every message of the deal has that key: the last value is kept
        # a delete with neither a row image (replica identity default) nor a key: nothing says what was deleted
        delete = dbz.envelope("opportunity", "d", None, None, c.lsn.next(), c.lsn.ts_ms)
        c.raw("null-key-delete-without-row", "opportunity", None, c.encoded("opportunity", "x", delete)[1])
        c.good_deals(5)
        c.flush()

        sandbox.collect(COMMANDS, lambda ms: {m.key().decode() for m in ms} >= set(c.good), 120, "the good deals")
        time.sleep(4)  # grace (1 s) and park re-checks (0.5 s) raise the validation exceptions meanwhile
        yield sandbox, c, w
    finally:
        w.kill()
        sandbox.drop()


def dead_letters(sandbox: Sandbox) -> list:
    return sandbox.everything("sync.dead-letter", quiet=2)


def exceptions_by_deal(sandbox: Sandbox) -> dict[str, set[str]]:
    out = defaultdict(set)
    for m in sandbox.everything("sync.exceptions", quiet=2):
        r = sandbox.decode(m)
        if r["status"] in ("OPEN", "PARKED"):
            out[r["correlation_id"]].add(r["reason_code"])
    return out


def commanded(sandbox: Sandbox) -> dict[str, list]:
    out = defaultdict(list)
    for kind, command_id, body in kinds(sandbox, sandbox.everything(COMMANDS, quiet=2)):
        out[body["opportunity_id"]].append((kind, command_id))
    return out


@pytest.mark.timeout(300)
def test_undecodable_records_are_dead_lettered_each_with_its_reason(corpus_run):
    sandbox, c, _ = corpus_run
    reasons = {m.value(): dict(m.headers())["x-reason"].decode() for m in dead_letters(sandbox)}
    expected = {
        "truncated": "AVRO_DECODE_ERROR",
        "bad-magic": "BAD_MAGIC_BYTE",
        "unknown-schema-id": "UNKNOWN_SCHEMA_ID",
        "not-avro-at-all": "BAD_MAGIC_BYTE",
        "null-key-delete-without-row": "NOT_A_CDC_EVENT",
    }
    assert {name: reasons.get(c.raw_values[name]) for name in expected} == expected
    ledger = {sandbox.decode(m)["exception_id"]: sandbox.decode(m) for m in sandbox.everything("sync.exceptions")}
    for m in dead_letters(sandbox):  # each quarantine also has its exception record, reason and all
        record = ledger[dict(m.headers())["x-exception-id"].decode()]
        assert record["status"] == "DEAD_LETTERED" and record["reason_code"] == dict(m.headers())["x-reason"].decode()


@pytest.mark.timeout(300)
def test_absurd_but_schema_valid_deals_are_raised_as_reason_coded_exceptions_not_orders(corpus_run):
    sandbox, _, _ = corpus_run
    raised, orders = exceptions_by_deal(sandbox), commanded(sandbox)
    expected = {
        "opp-bad-negative-qty": "INVALID_QUANTITY",
        "opp-bad-amount-1e15": "AMOUNT_MISMATCH",
        "opp-bad-price-1e15": "PRICE_OUT_OF_POLICY",  # beyond the ERP line's decimal(18,4)
        "opp-bad-currency": "UNSUPPORTED_CURRENCY",
    }
    assert {opp: reason for opp, reason in expected.items() if reason in raised[opp]} == expected
    assert not {opp: orders[opp] for opp in expected if orders.get(opp)}, "an absurd deal became an order"


@pytest.mark.timeout(300)
def test_a_deal_closing_in_the_year_9999_is_raised_not_ordered(corpus_run):
    sandbox, _, _ = corpus_run
    assert "opp-bad-close-9999" not in commanded(sandbox)
    assert exceptions_by_deal(sandbox)["opp-bad-close-9999"] == {"CLOSE_DATE_OUT_OF_RANGE"}


@pytest.mark.timeout(300)
def test_huge_strings_and_odd_keys_do_not_stop_the_stream(corpus_run):
    """A 400 kB name is valid data (orders do not carry it); a key that is not a Debezium Key
    record does not matter for an upsert (the row id is the value's), and one that looks framed but
    names no schema is quarantined like any undecodable record."""
    sandbox, c, w = corpus_run
    orders = commanded(sandbox)
    assert {opp for opp in c.good if len(orders[opp]) >= 1} == set(c.good)
    assert all(len({cid for _, cid in orders[opp]}) == 1 for opp in c.good)
    assert [k for k, _ in orders["opp-big-name"]] == ["CreateSalesOrder"]
    assert [k for k, _ in orders["opp-key-garbage-key"]] == ["CreateSalesOrder"]
    assert [k for k, _ in orders["opp-key-null-key"]] == ["CreateSalesOrder"]
    int_keyed = [dict(m.headers())["x-reason"] for m in dead_letters(sandbox) if m.key() == (42).to_bytes(8, "big")]
    assert int_keyed and set(int_keyed) == {b"UNKNOWN_SCHEMA_ID"}
    assert w.proc.poll() is None


@pytest.mark.timeout(180)
def test_a_1mb_cdc_record_is_quarantined_or_applied_and_the_stream_keeps_flowing(sandbox: Sandbox, worker_factory):
    sandbox.create_all()
    c = Corpus(sandbox)
    for table, row_id, envelope in workload.reference_data(c.lsn, accounts=2, products=5):
        c.send(table, *c.encoded(table, row_id, envelope))
    c.good_deals(2)
    c.deal("opp-huge-name", name="n" * HUGE)
    c.good_deals(3)
    c.flush()
    worker_factory()
    sandbox.collect(COMMANDS, lambda ms: {m.key().decode() for m in ms} >= set(c.good), 30, "the good deals")
    huge_key = c.feed.encoders["opportunity"][0].encode(dbz.key("opp-huge-name"))
    dead = [m for m in dead_letters(sandbox) if m.key() == huge_key]
    assert not commanded(sandbox).get("opp-huge-name")
    [letter] = dead  # set aside by its coordinates: the copy would be larger than the producer may send
    headers = dict(letter.headers())
    assert headers["x-reason"] == b"MESSAGE_TOO_LARGE", headers["x-detail"][:600]
    assert int(headers["x-payload-dropped"]) > 1_000_000
    assert letter.value() is None
    assert headers["x-original-coordinates"].startswith(sandbox.topic("crm.public.opportunity").encode())
    c.good_deals(2)  # the stream keeps flowing after it
    c.flush()
    sandbox.collect(COMMANDS, lambda ms: {m.key().decode() for m in ms} >= set(c.good), 60, "deals sent after it")
