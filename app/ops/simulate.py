"""``crm-erp-sync simulate crm|erp``: the simulators' Kafka edge.

The behaviour lives in the pure modules ``app.sim.crm`` (what the CRM's Debezium connector writes)
and ``app.sim.erp_system`` (what an ERP does with sales-order commands); this module only encodes,
sends, consumes and paces. Values go through the schema registry in the Confluent wire format. The
CRM side stands in for a CDC producer, so it registers its own schemas under its topics' subjects
as Debezium's converter does (``producer_schema_id``); the ERP side writes the service's
contracts with the ids ``crm-erp-sync schemas register`` registered (never auto-registered).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import signal
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from app.domain.errors import ServiceError
from app.settings import Settings
from app.sim import crm
from app.sim import debezium as dbz
from app.sim.erp_system import ErpConfig, ErpSummary, ErpSystem

COMMANDS = "erp.commands.sales-order"
EVENTS = "erp.events.sales-order"
EVENT_CONTRACT = "io.crmerpsync.erp.events.ErpOrderEvent"
CUSTOMER_COMMANDS = "erp.commands.customer"
CUSTOMER_EVENTS = "erp.events.customer"
CUSTOMER_EVENT_CONTRACT = "io.crmerpsync.erp.events.ErpCustomerEvent"
MILESTONE_EVENTS = "erp.events.milestone"
MILESTONE_EVENT_CONTRACT = "io.crmerpsync.erp.events.ErpMilestoneEvent"


class SimulateError(ServiceError):
    """The platform is not ready for the simulator (no topic, no registered contract)."""


def _registry(s: Settings):
    from confluent_kafka.schema_registry import SchemaRegistryClient

    from app.client_config import registry_config

    return SchemaRegistryClient(registry_config(s, {"timeout": 30}))


def _schema_id(reg, subject: str, contract: str) -> int:
    from confluent_kafka.schema_registry import Schema
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    from app.contracts import default_index

    schema = Schema(json.dumps(default_index().expanded(contract)), "AVRO")
    try:
        return reg.lookup_schema(subject, schema).schema_id
    except SchemaRegistryError as exc:
        raise SimulateError(
            f"{subject}: {contract} is not registered ({exc.http_status_code}); "
            "run `crm-erp-sync topics apply` and `crm-erp-sync schemas register` first"
        ) from exc


def producer_schema_id(reg, subject: str, contract: str) -> int:
    """Register ``contract`` under ``subject`` as a CDC producer's converter does (auto-register, no
    compatibility level: the subject is the producer's); the id of the registered schema."""
    from confluent_kafka.schema_registry import Schema

    from app.contracts import default_index

    return reg.register_schema(subject, Schema(json.dumps(default_index().expanded(contract)), "AVRO"))


def _producer(s: Settings):
    from confluent_kafka import Producer

    from app.client_config import kafka_config

    return Producer(kafka_config(s, {"linger.ms": 5, "enable.idempotence": True}))


def _send(producer, topic: str, key: bytes | None, value: bytes | None) -> None:
    while True:
        try:
            producer.produce(topic, key=key, value=value)
            return
        except BufferError:
            producer.poll(0.05)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(type(value).__name__)


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")


# --- the CRM: Debezium CDC out -----------------------------------------------------------


def run_crm(
    s: Settings,
    sim: crm.CrmSimulator,
    rate: float = 0.0,
    duration: float | None = None,
    say: Callable[[str], None] = print,
    progress_s: float = 5.0,
    stop: threading.Event | None = None,
) -> crm.CrmSummary:
    """Produce the simulator's stream: ``rate`` messages/s (0: as fast as possible), for ``duration``
    seconds at most (then no new deal starts; deals in flight finish). Commit times are stamped at
    send time, so source-to-command latency is measured from now."""
    reg = _registry(s)
    ids: dict[str, tuple[int, int]] = {}
    for table in dbz.TABLES:
        topic = s.topic(f"crm.public.{table}")
        ids[table] = (
            producer_schema_id(reg, f"{topic}-key", crm.key_contract(table)),
            producer_schema_id(reg, f"{topic}-value", crm.value_contract(table)),
        )
    producer = _producer(s)
    started = last_report = time.monotonic()
    next_at = time.perf_counter()
    sent = 0
    try:
        for p in sim.events():
            now = time.monotonic()
            if (duration is not None and now - started >= duration) or (stop is not None and stop.is_set()):
                sim.stop()
            if rate > 0:
                next_at += 1.0 / rate
                delay = next_at - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            if p.value is not None and p.kind not in (crm.Kind.DUPLICATE, crm.Kind.MALFORMED):
                dbz.restamp(p.value, int(time.time() * 1000))  # a duplicate repeats its original's bytes
            key_id, value_id = ids[p.table]
            _send(producer, s.topic(p.topic), crm.wire_key(p, key_id), crm.wire_value(p, value_id))
            sent += 1
            if sent % 1000 == 0:
                producer.poll(0)
            if progress_s and now - last_report >= progress_s:
                last_report = now
                done = len(sim.summary.deals)
                say(f"crm: {sent} messages, {done} deals finished, {sent / max(now - started, 1e-9):.0f} msg/s")
    except KeyboardInterrupt:
        say("crm: interrupted; deals in flight are left unfinished")
    finally:
        left = producer.flush(60)
    if left:
        raise SimulateError(f"{left} message(s) not delivered within 60 s")
    return sim.summary


# --- the ERP: commands in, events out -------------------------------------------------------


class CommandDecoder:
    """Sales-order commands from the wire: writer schema by id from the registry (cached)."""

    def __init__(self, reg) -> None:
        self._reg = reg
        self._schemas: dict[int, Any] = {}

    def decode(self, raw: bytes | None) -> dict[str, Any]:
        import fastavro

        from app.serde import wire
        from app.serde.registry import parse

        schema_id, body = wire.split(raw)
        if schema_id not in self._schemas:
            self._schemas[schema_id] = parse(self._reg.get_schema(schema_id).schema_str)
        return fastavro.schemaless_reader(io.BytesIO(body), self._schemas[schema_id], None, return_record_name=True,
                                          return_record_name_override=True)  # fmt: skip


def run_erp(
    s: Settings,
    erp: ErpSystem,
    duration: float | None = None,
    drain: float = 15.0,
    idle_exit: float | None = None,
    group: str | None = None,
    say: Callable[[str], None] = print,
    progress_s: float = 5.0,
    stop: threading.Event | None = None,
) -> ErpSummary:
    """Consume sales-order commands for ``duration`` s (None: until ``stop`` or Ctrl-C), then keep
    delivering already scheduled events for at most ``drain`` s. ``idle_exit``: also stop once no
    command arrived and nothing was delivered for that long, with nothing scheduled."""
    from app.engine.reader import Subscription
    from app.serde.avro import AvroEncoder

    reg = _registry(s)
    events_topic, customer_topic = s.topic(EVENTS), s.topic(CUSTOMER_EVENTS)
    encoder = AvroEncoder(_schema_id(reg, f"{events_topic}-value", EVENT_CONTRACT), _expanded(EVENT_CONTRACT))
    customer_encoder = AvroEncoder(
        _schema_id(reg, f"{customer_topic}-value", CUSTOMER_EVENT_CONTRACT), _expanded(CUSTOMER_EVENT_CONTRACT)
    )
    milestone_topic = s.topic(MILESTONE_EVENTS)
    milestone_encoder = AvroEncoder(
        _schema_id(reg, f"{milestone_topic}-value", MILESTONE_EVENT_CONTRACT), _expanded(MILESTONE_EVENT_CONTRACT)
    )
    decoder = CommandDecoder(reg)
    customer_commands = s.topic(CUSTOMER_COMMANDS)
    consumer = Subscription(
        s, [s.topic(COMMANDS), customer_commands], group or f"{s.app_id}.erp-sim", **{"enable.auto.commit": True}
    )
    producer = _producer(s)
    started = last_report = last_activity = time.monotonic()
    consuming, drain_until = True, None
    try:
        while not (stop is not None and stop.is_set()):
            now = time.monotonic()
            if consuming and duration is not None and now - started >= duration:
                consuming, drain_until = False, now + drain
            pending = erp.pending() + erp.customers.pending()
            if not consuming and (pending == 0 or now >= (drain_until or now)):
                break
            if idle_exit is not None and pending == 0 and now - last_activity >= idle_exit:
                break
            wait = 0.2
            for next_due in (erp.next_due(), erp.customers.next_due()):
                if next_due is not None:
                    wait = min(wait, max(0.0, next_due - time.time()))
            if consuming:
                for msg in consumer.consume(500, wait):
                    last_activity = time.monotonic()
                    try:
                        value = decoder.decode(msg.value())
                    except Exception as exc:
                        erp.summary.undecodable += 1
                        say(f"erp: undecodable command at {msg.topic()}/{msg.partition()}/{msg.offset()}: {exc}")
                        continue
                    if msg.topic() == customer_commands:
                        erp.customers.on_command(value, time.time())
                    else:
                        erp.on_command(value, time.time())
            elif wait:
                time.sleep(wait)
            for record in erp.due(time.time()):
                last_activity = time.monotonic()
                key = record["correlation_id"].encode()
                if "milestone" in record:
                    _send(producer, milestone_topic, key, milestone_encoder.encode(record))
                else:
                    _send(producer, events_topic, key, encoder.encode(record))
            for record in erp.customers.due(time.time()):
                last_activity = time.monotonic()
                _send(producer, customer_topic, record["account_id"].encode(), customer_encoder.encode(record))
            producer.poll(0)
            if progress_s and now - last_report >= progress_s:
                last_report = now
                got, sent = sum(erp.summary.commands.values()), sum(erp.summary.delivered.values())
                say(f"erp: {got} commands, {erp.summary.orders} orders, {sent} events sent, {erp.pending()} scheduled")
    except KeyboardInterrupt:
        say(f"erp: interrupted; {erp.pending()} scheduled event(s) not sent")
    finally:
        consumer.close()
        left = producer.flush(60)
    if left:
        raise SimulateError(f"{left} event(s) not delivered within 60 s")
    return erp.summary


def _expanded(contract: str) -> dict[str, Any]:
    from app.contracts import default_index

    return default_index().expanded(contract)


# --- the command line -------------------------------------------------------------------


def _config_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    group = parser.add_argument_group(f"{cls.__name__} ({cls.__doc__.splitlines()[0].rstrip('.')})")
    for f in dataclasses.fields(cls):
        kind = type(f.default)
        group.add_argument(
            f"--{f.name.replace('_', '-')}",
            type=kind,
            default=None,
            metavar="N" if kind is int else "X",
            help=f"{f.metadata.get('help', '')} (default {f.default})",
        )


def _given(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if getattr(args, f.name) is not None}


def add_parser(sub, settings: Callable[[], Settings]) -> None:
    """``simulate crm`` and ``simulate erp`` under the CLI's subcommands."""
    sim = sub.add_parser("simulate", help="seeded CRM (Debezium CDC out) and ERP (commands in, events out) simulators")
    which = sim.add_subparsers(dest="system", required=True)

    c = which.add_parser("crm", help="produce realistic Debezium CDC for accounts, contacts, products and deals")
    c.add_argument("--seed", type=int, default=1, help="the same seed and flags give the same stream (default 1)")
    c.add_argument("--rate", type=float, default=0.0, help="messages per second; 0: as fast as possible (default)")
    c.add_argument("--count", type=int, help="deals to play out (default 100 unless --duration is given)")
    c.add_argument("--duration", type=float, help="seconds after which no new deal starts (deals in flight finish)")
    c.add_argument("--prefix", default="opp", help="opportunity id prefix (default opp: opp-0, opp-1, ...)")
    c.add_argument(
        "--erp-links",
        action="store_true",
        help="expect an ERP (simulate erp) to link unlinked accounts: their deals count as becoming orders",
    )
    c.add_argument("--json", type=Path, help="also write the summary (with per-deal expectations) to this file")
    _config_flags(c, crm.CrmMix)
    c.set_defaults(func=lambda args: _crm_cli(settings(), args))

    e = which.add_parser("erp", help="consume sales-order commands, upsert by command id, emit ERP order events")
    e.add_argument("--seed", type=int, default=1, help="the same seed and command stream give the same events")
    e.add_argument("--duration", type=float, help="seconds to consume commands (default: until Ctrl-C)")
    e.add_argument("--drain", type=float, default=15.0, help="after --duration, seconds to send scheduled events")
    e.add_argument("--idle-exit", type=float, help="stop after this many seconds without commands or events")
    e.add_argument("--group", help="consumer group (default <app id>.erp-sim)")
    e.add_argument("--clean", action="store_true", help="every fault rate 0 (flags given still apply)")
    e.add_argument("--json", type=Path, help="also write the summary to this file")
    _config_flags(e, ErpConfig)
    e.set_defaults(func=lambda args: _erp_cli(settings(), args))


def _crm_cli(s: Settings, args: argparse.Namespace) -> int:
    import sys

    try:
        mix = crm.CrmMix(**_given(args, crm.CrmMix))
    except ValueError as exc:
        print(f"crm-erp-sync simulate crm: {exc}", file=sys.stderr)
        return 2
    count = args.count if args.count is not None else (None if args.duration else 100)
    sim = crm.CrmSimulator(args.seed, mix, count, prefix=args.prefix, erp_links=args.erp_links)
    try:
        summary = run_crm(s, sim, args.rate, args.duration)
    except SimulateError as exc:
        print(f"crm-erp-sync simulate crm: {exc}", file=sys.stderr)
        return 2
    print(summary.render(), end="")
    if args.json:
        write_json(args.json, summary.to_json())
        print(f"summary written to {args.json}")
    return 0


def _erp_cli(s: Settings, args: argparse.Namespace) -> int:
    import sys

    given = _given(args, ErpConfig)
    try:
        config = ErpConfig.clean(**given) if args.clean else ErpConfig(**given)
    except ValueError as exc:
        print(f"crm-erp-sync simulate erp: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        summary = run_erp(s, ErpSystem(args.seed, config), args.duration, args.drain, args.idle_exit, args.group,
                          stop=stop)  # fmt: skip
    except SimulateError as exc:
        print(f"crm-erp-sync simulate erp: {exc}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(summary.render(), end="")
    if args.json:
        write_json(args.json, summary.to_json())
        print(f"summary written to {args.json}")
    return 0
