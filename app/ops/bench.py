"""``crm-erp-sync bench``: the opportunity-to-order path measured against its two ceilings.

(a) I/O ceiling: a raw confluent-kafka loop consuming the preloaded CDC and producing the same bytes.
(b) Python ceiling: one hand-written confluent-kafka loop doing the service's per-event work with
    the service's own functions (decode, normalise, dedup/assemble/validate via ``decide``,
    contract validation, encode, produce) — no framework. Like the worker, it holds the reference
    data before it decides deals (the worker's deal agent waits for it), so it decides the same
    commands.
(c) The service: ``crm-erp-sync worker`` processes (1, then 2) on the same kind of preloaded input,
    timed from ready to the last CreateSalesOrder; then live runs at half the measured maximum rate
    and at all of it, in that order, for source-to-command latency (from the CDC source commit
    timestamp to the command's Kafka timestamp), after a warm-up that is reported apart.
Every run gets its own topic prefix, so runs never see each other's data, and the broker settles
between runs (the last run's topics deleted, produce round trips quick again). A ratio is printed
only between runs that sent the same set of command ids. Whatever ends the bench (an error,
Ctrl-C, SIGTERM) stops the workers it started and deletes its topics.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import itertools
import json
import os
import signal
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
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import NewTopic
from confluent_kafka.schema_registry import SchemaRegistryClient
from rocksdict import Rdict

from app.catalog import default_catalog
from app.client_config import admin_client, kafka_config, registry_config, security_env
from app.contracts import default_index
from app.domain.changes import Lineage
from app.domain.orders.decide import DealChange
from app.engine.bench_work import DEALS, REFERENCE, REFERENCES_ENV, Work
from app.engine.reader import Subscription
from app.ops import schemas_admin, topics_admin
from app.ops.simulate import producer_schema_id
from app.ops.worker_process import WORKER, WorkerProcess
from app.serde import wire
from app.serde.avro import AvroEncoder
from app.settings import Settings
from app.sim import debezium as dbz
from app.sim import workload

CRM = (*REFERENCE, *DEALS)
COMMANDS = "erp.commands.sales-order"
SETTLED_MS = 20.0  # a produce round trip (acks=all) this quick, five times in a row: the broker is idle


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


def _consume_all(
    consumer: Subscription,
    total: int,
    on_msg: Callable[[Any], None],
    timeout: float = 600,
    after_batch: Callable[[], None] | None = None,
) -> float:
    """Consume ``total`` messages, calling ``on_msg`` (and ``after_batch`` after each fetched batch);
    seconds from the first message to the last."""
    seen, first = 0, None
    deadline = time.monotonic() + timeout
    while seen < total and time.monotonic() < deadline:
        for msg in consumer.consume(1000, 0.5):
            if first is None:
                first = time.perf_counter()
            on_msg(msg)
            seen += 1
        if after_batch is not None:
            after_batch()
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


def python_ceiling(env: Env, references: int, deal_events: int, durable: bool = False) -> tuple[float, set[str]]:
    """The service's per-event work (app/engine/bench_work.py) in one plain loop: events/s and the
    command ids it sent. The reference data is read first and applied in-process, as the worker's
    deal agent waits for it.

    ``durable`` (b'): the deal states live in RocksDB (rocksdict), each state change is also sent to
    a compacted changelog topic, and every commit interval the producer is flushed and the input
    offsets committed, as the worker commits: the cost of durability without a framework."""
    s = env.settings
    work = Work(s)
    states: Any = {}
    changelog = s.topic("bench-changelog")
    if durable:
        admin = admin_client(s)  # held: the result needs the client alive
        admin.create_topics([NewTopic(changelog, 4, 1, config={"cleanup.policy": "compact"})])[changelog].result(30)
        states = Rdict(str(env.workdir / "b-durable"))
    producer = env.producer()

    def step(msg) -> None:
        table, change = work.change(msg.topic(), msg.key(), msg.value())
        if table in REFERENCE:
            work.apply_reference(table, change)
            return
        opp = work.deal_of(table, change)
        lineage = Lineage(msg.topic(), msg.partition(), msg.offset(), None, change.position.ts_ms)
        event = DealChange(opp, change, lineage, f"{msg.topic()}/{msg.partition()}/{msg.offset()}")
        states[opp], ready = work.decide(states.get(opp), event)
        if durable:
            ready.append((changelog, opp.encode(), states[opp]))
        for topic, key, value in ready:
            while True:
                try:
                    producer.produce(topic, key=key, value=value)
                    break
                except BufferError:  # librdkafka's queue is full: serve delivery reports, then retry
                    producer.poll(0.05)
        producer.poll(0)

    elapsed = 0.0
    for tables_of_phase, count in ((REFERENCE, references), (DEALS, deal_events)):
        with env.consumer([f"crm.public.{t}" for t in tables_of_phase]) as consumer:
            checkpoint = _Checkpoint(consumer, producer, s.commit_interval_s) if durable else None
            elapsed += _consume_all(consumer, count, step, after_batch=checkpoint)
            if checkpoint:
                checkpoint(force=True)
    producer.flush(60)
    if durable:
        states.close()
    return (references + deal_events) / elapsed, work.sent


class _Checkpoint:
    """(b')'s commit, as the worker's: every interval the producer is flushed (outputs and changelog
    on the broker), then the input offsets are committed."""

    def __init__(self, consumer: Subscription, producer: Producer, interval_s: float) -> None:
        self.consumer, self.producer, self.interval_s = consumer, producer, interval_s
        self.last = time.monotonic()

    def __call__(self, force: bool = False) -> None:
        if force or time.monotonic() - self.last >= self.interval_s:
            self.producer.flush(60)
            self.consumer.commit_positions()
            self.last = time.monotonic()


def _collect_commands(
    env: Env, expected: set[str], timeout: float, started: float, at_half: Callable[[], None] = lambda: None
) -> tuple[float, set[str]]:
    """Seconds from ``started`` until every ``expected`` command id is on the command topic, and the
    ids seen by then (expected or not); ``at_half`` is called once half of them are there."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    half = False
    with env.consumer([COMMANDS]) as consumer:
        while not expected <= seen and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.5):
                seen.add(_command(msg.value())["envelope"]["command_id"])
            if not half and len(seen) * 2 >= len(expected):
                half = True
                at_half()
    missing = len(expected - seen)
    if missing:
        raise RuntimeError(f"{missing} of {len(expected)} commands not sent within {timeout}s")
    return time.perf_counter() - started, seen


def service(runs: Runs, deals: int, workers: int, expected: set[str]) -> dict[str, Any]:
    env = runs.env(f"service{workers}")
    lsn = dbz.Lsn(ts_ms=int(time.time() * 1000))
    ref_events = env.produce(workload.reference_data(lsn))
    events = env.produce(workload.deals(lsn, deals))
    procs = [runs.worker(env, i) for i in range(workers)]
    started = time.perf_counter()
    half_rss: list[float | None] = []

    def at_half() -> None:  # the peak after half the input: the peak at the end says whether it stays flat
        half_rss.extend(_mb(p.peak_rss_mb()) for p in procs)

    elapsed, ids = _collect_commands(env, expected, timeout=1800, started=started, at_half=at_half)
    rss = [_mb(p.peak_rss_mb()) for p in procs]
    runs.finish(env)
    return {
        "workers": workers,
        "events": events + ref_events,
        "seconds": round(elapsed, 2),
        "events_per_s": round((events + ref_events) / elapsed),
        "peak_rss_mb_at_half": half_rss,
        "peak_rss_mb": rss,
        "commands": len(ids),
        "command_ids_sha256": _digest(ids),
        "same_commands_as_b": ids == expected,
    }


def _mb(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def faust_cap(runs: Runs, deals: int, expected: set[str]) -> dict[str, Any]:
    """(f): a stock Faust app with the service's topology doing (b)'s work (app/engine/faust_cap.py)."""
    env = runs.env("faust-cap")
    lsn = dbz.Lsn(ts_ms=int(time.time() * 1000))
    references = env.produce(workload.reference_data(lsn))
    events = env.produce(workload.deals(lsn, deals))
    runs.worker(env, 0, ("-m", "app.engine.faust_cap"), **{REFERENCES_ENV: str(references)})
    elapsed, ids = _collect_commands(env, expected, timeout=1800, started=time.perf_counter())
    runs.finish(env)
    return {
        "events": events + references,
        "seconds": round(elapsed, 2),
        "events_per_s": round((events + references) / elapsed),
        "commands": len(ids),
        "same_commands_as_b": ids == expected,
    }


def _digest(ids: set[str]) -> str:
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()[:16]


def latency(runs: Runs, rate: float, seconds: float, name: str, warmup: float = 3.0) -> dict[str, Any]:
    """Deals produced live at ``rate`` events/s; source-to-command latency of their creates.

    The first ``warmup`` seconds of the stream are deals of their own, reported apart: a worker's
    first second of traffic pays its registry lookups, topic metadata and first code paths (up to
    650 ms seen), which would otherwise set the p99 of a 15 s run."""
    env = runs.env(name)
    lsn = dbz.Lsn(ts_ms=int(time.time() * 1000))
    env.produce(workload.reference_data(lsn))
    runs.worker(env, 0)
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
    runs.finish(env)
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


@functools.cache
def _command_schema() -> Any:
    return fastavro.parse_schema(default_index().expanded(_COMMAND_CONTRACT))


def _command(value: bytes) -> dict[str, Any]:
    return fastavro.schemaless_reader(io.BytesIO(value[wire.HEADER_SIZE :]), _command_schema(), None)


def _source_ts(env: Env, value: bytes) -> int | None:
    ts = _command(value)["envelope"]["lineage"]["source_ts"]
    return None if ts is None else int(ts.timestamp() * 1000)


_COMMAND_CONTRACT = "io.crmerpsync.erp.commands.SalesOrderCommand"


class Runs:
    """Everything a bench run starts, stopped and deleted however the bench ends (an error, Ctrl-C,
    SIGTERM); between runs the broker is left to settle, so no run inherits another's backlog."""

    def __init__(self, base: Settings, root: Path, worker_settings: dict[str, str] | None = None) -> None:
        self.base, self.root = base, root
        self.worker_settings = worker_settings or {}  # CRM_ERP_* settings every worker of this bench gets
        self._procs: dict[str, list[WorkerProcess]] = {}  # by run prefix
        self._envs: dict[str, Env] = {}
        self.settle_s: list[float] = []
        self._probe = f"{base.topic_prefix}crm-erp-bench-settle-{uuid.uuid4().hex[:6]}"

    def env(self, name: str) -> Env:
        env = Env.fresh(self.base, self.root, name)
        self._envs[env.settings.topic_prefix] = env
        return env

    def worker(self, env: Env, index: int, command: tuple[str, ...] = WORKER, **extra_env: str) -> WorkerProcess:
        proc = WorkerProcess(
            env.worker_env(index) | self.worker_settings | extra_env, env.workdir / f"worker{index}.log", command
        )
        self._procs.setdefault(env.settings.topic_prefix, []).append(proc)
        return proc.start()

    def finish(self, env: Env) -> None:
        """Stop the run's workers, delete its topics, wait for the broker to settle."""
        prefix = env.settings.topic_prefix
        for proc in self._procs.pop(prefix, []):
            proc.stop()
        self._envs.pop(prefix).drop()
        self.settle_s.append(round(settle(self.base, prefix, self._probe), 1))

    def close(self) -> None:
        for procs in self._procs.values():
            for proc in procs:
                proc.stop()
        for env in self._envs.values():
            env.drop()
        self._procs.clear()
        self._envs.clear()
        admin = admin_client(self.base)
        for done in admin.delete_topics([self._probe]).values():
            with contextlib.suppress(KafkaException):  # never created: no run finished
                done.result(30)


def settle(s: Settings, prefix: str, probe: str, timeout: float = 120.0) -> float:
    """Seconds until the broker has deleted ``prefix``'s topics and a produce round trip to ``probe``
    (acks=all) takes under SETTLED_MS five times in a row; gives up after ``timeout``."""
    started = time.monotonic()
    admin = admin_client(s)
    while time.monotonic() - started < timeout:
        if not any(name.startswith(prefix) for name in admin.list_topics(timeout=10).topics):
            break
        time.sleep(0.5)
    if probe not in admin.list_topics(timeout=10).topics:
        admin.create_topics([NewTopic(probe, 1, 1)])[probe].result(30)
    producer = Producer(kafka_config(s, {"linger.ms": 0, "acks": "all"}))
    quick = 0
    while quick < 5 and time.monotonic() - started < timeout:
        sent = time.perf_counter()
        producer.produce(probe, value=b"settle")
        producer.flush(10)
        quick = quick + 1 if (time.perf_counter() - sent) * 1000 < SETTLED_MS else 0
        time.sleep(0.1)
    return time.monotonic() - started


RUNS = ("f", "c1", "c2", "latency")  # after the ceilings (a), (b), (b'), which every bench runs


def run(
    base: Settings,
    deals: int,
    out: Path,
    say=print,
    latency_seconds: float = 15.0,
    only: tuple[str, ...] = RUNS,
    worker_settings: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Every run by default; ``only`` some of RUNS (to measure one lever), ``worker_settings``
    (``CRM_ERP_*`` names) given to every worker and recorded with the figures."""
    unknown = set(only) - set(RUNS)
    if unknown:
        raise ValueError(f"unknown bench runs {sorted(unknown)}; choose from {', '.join(RUNS)}")
    runs = Runs(base, Path(tempfile.mkdtemp(prefix="crm-erp-bench-")), worker_settings)
    interrupt = _stop_on_sigterm()
    try:
        return _run(runs, deals, out, say, latency_seconds, only)
    finally:
        runs.close()  # what an interrupted run started must not outlive it
        interrupt()


def _stop_on_sigterm() -> Callable[[], None]:
    """SIGTERM raises KeyboardInterrupt (so cleanups run) until the returned function restores it."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupted(*_: Any) -> None:
        raise KeyboardInterrupt("SIGTERM")

    previous = signal.signal(signal.SIGTERM, interrupted)
    return lambda: signal.signal(signal.SIGTERM, previous)


def _run(runs: Runs, deals: int, out: Path, say, latency_seconds: float, only: tuple[str, ...]) -> dict[str, Any]:
    results: dict[str, Any] = {"deals": deals, "events_per_deal": workload.EVENTS_PER_DEAL, "runs": list(only)}
    if runs.worker_settings:
        results["worker_settings"] = runs.worker_settings
    env = runs.env("ceilings")
    lsn = dbz.Lsn(ts_ms=int(time.time() * 1000))
    references, deal_events = env.produce(workload.reference_data(lsn)), env.produce(workload.deals(lsn, deals))
    total = references + deal_events
    say(f"preloaded {total} CDC events ({deals} deals, 3 lines each, decimal money) into 4 partitions per topic")
    results["a_io_events_per_s"] = round(io_ceiling(env, total))
    say(f"(a) I/O ceiling:      {results['a_io_events_per_s']:>8} events/s")
    b_rate, expected = python_ceiling(env, references, deal_events)
    results["b_python_events_per_s"] = round(b_rate)
    results["b_commands"], results["b_command_ids_sha256"] = len(expected), _digest(expected)
    say(f"(b) Python ceiling:   {results['b_python_events_per_s']:>8} events/s, {len(expected)} commands")
    b2_rate, b2_ids = python_ceiling(env, references, deal_events, durable=True)
    results["b2_durable_events_per_s"], results["b2_same_commands_as_b"] = round(b2_rate), b2_ids == expected
    same = "the same commands" if b2_ids == expected else f"{len(b2_ids)} commands, NOT those of (b)"
    say(f"(b') durable ceiling: {results['b2_durable_events_per_s']:>8} events/s, {same}")
    runs.finish(env)
    if "f" in only:
        f = results["f_faust_cap"] = faust_cap(runs, deals, expected)
        same = "the same commands as (b)" if f["same_commands_as_b"] else f"{f['commands']} commands, NOT those of (b)"
        say(f"(f) Faust cap:        {f['events_per_s']:>8} events/s, {same}")
    for workers in (1, 2):
        if f"c{workers}" not in only:
            continue
        r = service(runs, deals, workers, expected)
        results[f"c_service_{workers}w"] = r
        same = "the same commands as (b)" if r["same_commands_as_b"] else f"{r['commands']} commands, NOT those of (b)"
        say(
            f"(c) service, {workers} worker(s): {r['events_per_s']:>8} events/s, peak RSS {r['peak_rss_mb']} MB "
            f"({r['peak_rss_mb_at_half']} MB at half the commands), {same}"
        )
    _ratios(results, say)
    c1 = results.get("c_service_1w")
    if "latency" in only and c1:
        # Half rate first: the max-rate run ends with a backlog of seconds and its topics dropped, which
        # kept the broker busy into the run after it (p99 505 ms at half rate then, 78 ms run alone).
        for name, rate in (("half", c1["events_per_s"] / 2), ("max", c1["events_per_s"])):
            r = latency(runs, rate, latency_seconds, f"latency-{name}")
            results[f"latency_at_{name}_rate"] = r
            say(
                f"latency at {name} rate ({r['rate']} events/s, {r['deals']} deals): "
                f"p50 {r['p50_ms']:.0f} ms, p95 {r['p95_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms "
                f"(after a {r['warmup']['seconds']:.0f} s warm-up of {r['warmup']['deals']} deals, "
                f"their max {r['warmup']['max_ms']} ms)"
            )
    results["settle_s"] = runs.settle_s
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    say(f"written to {out}")
    return results


def _ratios(results: dict[str, Any], say) -> None:
    """Each ratio between two runs that sent the same command ids; the others are not printed."""
    c1, c2, f = results.get("c_service_1w"), results.get("c_service_2w"), results.get("f_faust_cap")
    if c1 and c1["same_commands_as_b"]:
        results["ratio_c_over_b"] = round(c1["events_per_s"] / results["b_python_events_per_s"], 3)
        say(f"c/b = {results['ratio_c_over_b']}")
        if f and f["same_commands_as_b"]:
            results["ratio_c_over_f"] = round(c1["events_per_s"] / f["events_per_s"], 3)
            say(f"c/f = {results['ratio_c_over_f']}")
        if results["b2_same_commands_as_b"]:
            results["ratio_c_over_b2"] = round(c1["events_per_s"] / results["b2_durable_events_per_s"], 3)
            say(f"c/b' = {results['ratio_c_over_b2']}")
    elif c1:
        say("c/b not printed: the service and (b) sent different commands")
    if c1 and c2 and c1["same_commands_as_b"] and c2["same_commands_as_b"]:
        results["ratio_2w_over_1w"] = round(c2["events_per_s"] / c1["events_per_s"], 3)
        say(f"2 workers / 1 worker = {results['ratio_2w_over_1w']}")
