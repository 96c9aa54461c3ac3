"""``crm-erp-sync bench``: the opportunity-to-order path measured against its two ceilings.

(a) I/O ceiling: a raw confluent-kafka loop consuming the preloaded CDC and producing the same bytes.
(b) Python ceiling: one hand-written confluent-kafka loop doing the service's per-event work with
    the service's own functions (decode, normalise, dedup/assemble/validate via ``decide``,
    contract validation, encode, produce) — no framework.
(c) The service: ``crm-erp-sync worker`` processes (1, then 2) on the same kind of preloaded input,
    timed from ready to the last CreateSalesOrder; then live runs at half the measured maximum rate
    and at all of it, in that order, for source-to-command latency (from the CDC source commit
    timestamp to the command's Kafka timestamp), after a warm-up that is reported apart.
Every run gets its own topic prefix, so runs never see each other's data.
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
import json
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastavro
import orjson
from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from app.catalog import default_catalog
from app.cdc import messages
from app.cdc.envelope import Normaliser, key_id
from app.client_config import admin_client, kafka_config, registry_config, security_env
from app.contracts import default_index
from app.contracts.models import model
from app.domain.changes import Lineage, Op
from app.domain.orders.deal import DealState
from app.domain.orders.decide import DealChange, decide
from app.domain.outputs import JSON
from app.engine import routes
from app.engine.reader import Subscription
from app.engine.reference_store import ReferenceStore
from app.engine.runtime import Runtime
from app.ops import schemas_admin, topics_admin
from app.ops.simulate import producer_schema_id
from app.ops.worker_process import WorkerProcess
from app.serde import wire
from app.serde.avro import AvroEncoder
from app.settings import Settings
from app.sim import debezium as dbz
from app.sim import workload

CRM = ("account", "product", "pricebook_entry", "opportunity", "opportunity_line_item")
COMMANDS = "erp.commands.sales-order"


@dataclass
class Env:
    """One isolated run: its own prefix, app id and state folder."""

    settings: Settings
    workdir: Path
    encoders: dict[str, tuple[AvroEncoder, AvroEncoder]] = field(default_factory=dict)

    @classmethod
    def fresh(cls, base: Settings, root: Path, name: str) -> Env:
        prefix = f"bench{uuid.uuid4().hex[:6]}-{name}."
        workdir = root / name
        s = base.model_copy(update={"topic_prefix": prefix, "app_id": f"{prefix}crm-erp-sync", "data_dir": workdir})
        env = cls(s, workdir)
        topics_admin.apply(s, default_catalog(), say=lambda _: None)
        schemas_admin.register(s, default_catalog(), default_index(), say=lambda _: None)
        env.register_cdc_encoders()
        return env

    def register_cdc_encoders(self) -> None:
        """Register the simulated CRM's key and envelope schemas as its producer would, and keep their encoders."""
        s = self.settings
        reg = SchemaRegistryClient(registry_config(s, {"timeout": 30}))
        for table in CRM:
            topic = s.topic(f"crm.public.{table}")
            pair = []
            for suffix, contract in (("key", f"crm.public.{table}.Key"), ("value", f"crm.public.{table}.Envelope")):
                sid = producer_schema_id(reg, f"{topic}-{suffix}", contract)
                pair.append(AvroEncoder(sid, default_index().expanded(contract)))
            self.encoders[table] = (pair[0], pair[1])

    def drop(self) -> None:
        topics_admin.delete_prefixed(self.settings, self.settings.topic_prefix)

    def producer(self) -> Producer:
        return Producer(kafka_config(self.settings, {"linger.ms": 20, "batch.num.messages": 10000}))

    def produce(self, items: Iterator[tuple[str, str, dict]], pace: Callable[[dict], None] | None = None) -> int:
        producer, n = self.producer(), 0
        for table, row_id, envelope in items:
            if pace:
                pace(envelope)
            kenc, venc = self.encoders[table]
            topic = self.settings.topic(f"crm.public.{table}")
            while True:
                try:
                    producer.produce(topic, key=kenc.encode(dbz.key(row_id)), value=venc.encode(envelope))
                    break
                except BufferError:
                    producer.poll(0.05)
            n += 1
            if n % 5000 == 0:
                producer.poll(0)
        producer.flush(60)
        return n

    def consumer(self, topics: list[str], group: str | None = None) -> Subscription:
        return Subscription(
            self.settings,
            [self.settings.topic(t) for t in topics],
            group or f"{self.settings.topic_prefix}bench-{uuid.uuid4().hex[:6]}",
            **{"enable.auto.commit": False, "fetch.min.bytes": 65536},
        )

    def worker_env(self, index: int) -> dict[str, str]:
        s = self.settings
        (self.workdir / f"w{index}").parent.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_ERP_")}
        env.update(security_env(s))  # a secured platform stays secured for the workers
        env.update(
            CRM_ERP_KAFKA_BOOTSTRAP=s.kafka_bootstrap,
            CRM_ERP_REGISTRY_URL=s.registry_url,
            CRM_ERP_TOPIC_PREFIX=s.topic_prefix,
            CRM_ERP_APP_ID=s.app_id,
            CRM_ERP_DATA_DIR=str(self.workdir / f"w{index}"),
            CRM_ERP_WEB_PORT=str(_free_port()),  # a leftover worker of an earlier run must not collide
        )
        return env


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _consume_all(consumer: Subscription, total: int, on_msg: Callable[[Any], None], timeout: float = 600) -> float:
    """Consume ``total`` messages, calling ``on_msg``; seconds from the first message to the last."""
    seen, first = 0, None
    deadline = time.monotonic() + timeout
    while seen < total and time.monotonic() < deadline:
        for msg in consumer.consume(1000, 0.5):
            if first is None:
                first = time.perf_counter()
            on_msg(msg)
            seen += 1
    if seen < total:
        raise RuntimeError(f"only {seen} of {total} messages within {timeout}s")
    return time.perf_counter() - (first or time.perf_counter())


def io_ceiling(env: Env, total: int) -> float:
    out = env.settings.topic("bench-io")
    admin = admin_client(env.settings)
    admin.create_topics([NewTopic(out, 4, 1)])[out].result(30)
    producer = env.producer()
    consumer = env.consumer([f"crm.public.{t}" for t in CRM])

    def forward(msg) -> None:
        while True:
            try:
                producer.produce(out, key=msg.key(), value=msg.value())
                return
            except BufferError:
                producer.poll(0.05)

    elapsed = _consume_all(consumer, total, forward)
    producer.flush(60)
    consumer.close()
    return total / elapsed


def python_ceiling(env: Env, total: int) -> float:
    """The service's per-event work in one plain loop (reference data applied in-process)."""
    s = env.settings
    runtime = Runtime(s)
    reg = SchemaRegistryClient(registry_config(s, {"timeout": 30}))
    writers: dict[int, Any] = {}
    refs = ReferenceStore()
    normalise = Normaliser()
    states: dict[str, bytes] = {}
    out_encoders: dict[str, AvroEncoder] = {}
    producer, consumer = env.producer(), env.consumer([f"crm.public.{t}" for t in CRM])
    tables = {s.topic(f"crm.public.{t}"): t for t in CRM}

    def decode(raw: bytes) -> tuple[Any, int]:
        sid, body = wire.split(raw)
        if sid not in writers:
            writers[sid] = fastavro.parse_schema(json.loads(reg.get_schema(sid).schema_str))
        return fastavro.schemaless_reader(io.BytesIO(body), writers[sid], None), sid

    def encoder(topic: str, contract: str) -> AvroEncoder:
        if topic not in out_encoders:
            schema = default_index().expanded(contract)
            sid = reg.lookup_schema(f"{topic}-value", Schema(json.dumps(schema), "AVRO")).schema_id
            out_encoders[topic] = AvroEncoder(sid, schema)
        return out_encoders[topic]

    def work(msg) -> None:
        table = tables[msg.topic()]
        value, sid = decode(msg.value())
        change = normalise(table, value, key_id(decode(msg.key())[0]), sid, writers[sid])
        if table in ("account", "product", "pricebook_entry"):
            key = {"account": "account:", "product": "product:"}.get(table)
            key = f"{key}{change.row_id}" if key else f"price:{change.fields['product_id']}|{change.fields['currency']}"
            fields = change.fields if table != "pricebook_entry" else {"list_price": str(change.fields["list_price"])}
            refs.apply(key, messages.reference(change, fields, change.op is Op.DELETE))
            return
        opp = change.row_id if table == "opportunity" else change.fields["opportunity_id"]
        lineage = Lineage(msg.topic(), msg.partition(), msg.offset(), None, change.position.ts_ms)
        event = DealChange(opp, change, lineage, f"{msg.topic()}/{msg.partition()}/{msg.offset()}")
        raw = states.get(opp)
        state = DealState.model_validate_json(raw) if raw else None
        decision = decide(state, event, refs, runtime.policy, dt.datetime.now(dt.UTC))
        ready = []
        for o in decision.outputs:
            where, record = routes.route(o), routes.record(o)
            topic = s.topic(where.topic)
            if where.contract == JSON:  # internal topics (parity facts) are JSON, as in the agents
                ready.append((topic, o.key.encode(), orjson.dumps(record)))
                continue
            value = encoder(topic, where.contract).encode(model(where.contract).model_validate(record).to_avro())
            ready.append((topic, o.key.encode(), value))
        states[opp] = decision.state.model_dump_json().encode()
        for topic, key, value in ready:
            while True:
                try:
                    producer.produce(topic, key=key, value=value)
                    break
                except BufferError:  # librdkafka's queue is full: serve delivery reports, then retry
                    producer.poll(0.05)
        producer.poll(0)

    elapsed = _consume_all(consumer, total, work)
    producer.flush(60)
    consumer.close()
    return total / elapsed


def _count_creates(env: Env, expected: int, timeout: float, started: float | None = None) -> float:
    """Seconds until ``expected`` distinct deals have a command on the command topic."""
    consumer = env.consumer([COMMANDS])
    keys: set[bytes] = set()
    deadline = time.monotonic() + timeout
    while len(keys) < expected and time.monotonic() < deadline:
        for msg in consumer.consume(1000, 0.5):
            keys.add(msg.key())
    consumer.close()
    if len(keys) < expected:
        raise RuntimeError(f"only {len(keys)} of {expected} deals got a command within {timeout}s")
    return time.perf_counter() - (started or 0)


def service(base: Settings, root: Path, deals: int, workers: int) -> dict[str, Any]:
    env = Env.fresh(base, root, f"service{workers}")
    lsn = dbz.Lsn(ts_ms=int(time.time() * 1000))
    ref_events = env.produce(workload.reference_data(lsn))
    events = env.produce(workload.deals(lsn, deals))
    procs = [WorkerProcess(env.worker_env(i), env.workdir / f"worker{i}.log") for i in range(workers)]
    for p in procs:
        p.start()
    started = time.perf_counter()
    try:
        elapsed = _count_creates(env, deals, timeout=1800, started=started)
        rss = [p.peak_rss_mb() for p in procs]
    finally:
        for p in procs:
            p.stop()
        env.drop()
    return {
        "workers": workers,
        "events": events + ref_events,
        "seconds": round(elapsed, 2),
        "events_per_s": round((events + ref_events) / elapsed),
        "peak_rss_mb": rss,
    }


def latency(base: Settings, root: Path, rate: float, seconds: float, name: str, warmup: float = 3.0) -> dict[str, Any]:
    """Deals produced live at ``rate`` events/s; source-to-command latency of their creates.

    The first ``warmup`` seconds of the stream are deals of their own, reported apart: a worker's
    first second of traffic pays its registry lookups, topic metadata and first code paths (up to
    650 ms seen), which would otherwise set the p99 of a 15 s run."""
    env = Env.fresh(base, root, name)
    lsn = dbz.Lsn(ts_ms=int(time.time() * 1000))
    env.produce(workload.reference_data(lsn))
    proc = WorkerProcess(env.worker_env(0), env.workdir / "worker.log").start()
    warm = int(rate * warmup / workload.EVENTS_PER_DEAL)
    deals = max(1, int(rate * seconds / workload.EVENTS_PER_DEAL))
    latencies: dict[bool, list[float]] = {True: [], False: []}  # by "a warm-up deal"
    done = threading.Event()

    def collect() -> None:
        consumer = env.consumer([COMMANDS])
        while len(latencies[True]) + len(latencies[False]) < warm + deals and not done.is_set():
            for msg in consumer.consume(500, 0.5):
                source_ts = _source_ts(env, msg.value())
                if source_ts is not None:
                    latencies[msg.key().startswith(b"warmup-")].append(msg.timestamp()[1] - source_ts)
        consumer.close()

    reader = threading.Thread(target=collect, daemon=True)
    reader.start()
    interval, next_at = 1.0 / rate, time.perf_counter()

    def pace(envelope: dict) -> None:
        nonlocal next_at
        next_at += interval
        delay = next_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        now_ms = int(time.time() * 1000)
        envelope["source"]["ts_ms"], envelope["ts_ms"] = now_ms, now_ms

    stream = itertools.chain(workload.deals(lsn, warm, seed=5, prefix="warmup"), workload.deals(lsn, deals, seed=11))
    try:
        env.produce(stream, pace=pace)
        reader.join(timeout=max(20.0, seconds * 8))  # stragglers: a deal may close before its lines
    finally:
        done.set()
        proc.stop()
        env.drop()
    measured, warming = latencies[False], latencies[True]
    if not measured:
        raise RuntimeError("no command observed in the latency run")
    q = statistics.quantiles(measured, n=100) if len(measured) > 1 else [measured[0]] * 99
    return {
        "rate": round(rate),
        "deals": len(measured),
        "p50_ms": q[49],
        "p95_ms": q[94],
        "p99_ms": q[98],
        "warmup": {"seconds": warmup, "deals": len(warming), "max_ms": max(warming, default=None)},
    }


_lineage_reader: dict[str, Any] = {}


def _source_ts(env: Env, value: bytes) -> int | None:
    if "schema" not in _lineage_reader:
        _lineage_reader["schema"] = fastavro.parse_schema(default_index().expanded(_COMMAND_CONTRACT))
    record = fastavro.schemaless_reader(io.BytesIO(value[5:]), _lineage_reader["schema"], None)
    ts = record["envelope"]["lineage"]["source_ts"]
    return None if ts is None else int(ts.timestamp() * 1000)


_COMMAND_CONTRACT = "io.crmerpsync.erp.commands.SalesOrderCommand"


def run(base: Settings, deals: int, out: Path, say=print, latency_seconds: float = 15.0) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="crm-erp-bench-"))
    results: dict[str, Any] = {"deals": deals, "events_per_deal": workload.EVENTS_PER_DEAL}
    env = Env.fresh(base, root, "ceilings")
    lsn = dbz.Lsn(ts_ms=int(time.time() * 1000))
    total = env.produce(workload.reference_data(lsn)) + env.produce(workload.deals(lsn, deals))
    say(f"preloaded {total} CDC events ({deals} deals, 3 lines each, decimal money) into 4 partitions per topic")
    results["a_io_events_per_s"] = round(io_ceiling(env, total))
    say(f"(a) I/O ceiling:      {results['a_io_events_per_s']:>8} events/s")
    results["b_python_events_per_s"] = round(python_ceiling(env, total))
    say(f"(b) Python ceiling:   {results['b_python_events_per_s']:>8} events/s")
    env.drop()
    for workers in (1, 2):
        r = service(base, root, deals, workers)
        results[f"c_service_{workers}w"] = r
        say(f"(c) service, {workers} worker(s): {r['events_per_s']:>8} events/s, peak RSS {r['peak_rss_mb']} MB")
    c1 = results["c_service_1w"]["events_per_s"]
    results["ratio_c_over_b"] = round(c1 / results["b_python_events_per_s"], 3)
    results["ratio_2w_over_1w"] = round(results["c_service_2w"]["events_per_s"] / c1, 3)
    say(f"c/b = {results['ratio_c_over_b']}   2 workers / 1 worker = {results['ratio_2w_over_1w']}")
    # Half rate first: the max-rate run ends with a backlog of seconds and its topics dropped, which
    # kept the broker busy into the run after it (p99 505 ms at half rate then, 78 ms run alone).
    for name, rate in (("half", c1 / 2), ("max", c1)):
        r = latency(base, root, rate, latency_seconds, f"latency-{name}")
        results[f"latency_at_{name}_rate"] = r
        say(
            f"latency at {name} rate ({r['rate']} events/s, {r['deals']} deals): "
            f"p50 {r['p50_ms']:.0f} ms, p95 {r['p95_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms "
            f"(after a {r['warmup']['seconds']:.0f} s warm-up of {r['warmup']['deals']} deals, "
            f"their max {r['warmup']['max_ms']} ms)"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    say(f"written to {out}")
    return results
