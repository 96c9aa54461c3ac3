"""``crm-erp-sync replay``: quarantined inputs re-injected into their source topics, audited and closed.

Candidates are read from the dead-letter topic (default) or the exceptions topic, from the start up
to the high watermarks captured when the command starts (assigned, never subscribed, nothing
committed), then selected by the pure rules of ``app.readmodels.replay`` against the exception ledger
(RESOLVED ones are skipped when the ledger exists).

Each replay is produced and its delivery awaited before the next one (paced to ``rate`` per
second); only then are its AuditRecord (REPLAYED) and ExceptionResolution (REPLAYED) produced.
Both are encoded *before* the replay is produced, so a registry problem stops the run before
anything is re-injected. A crash between a replay and its resolution leaves the exception open:
a later run would replay it again (at least once, like the rest of the pipeline).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Message, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient, topic_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from app.client_config import registry_config
from app.engine.reader import TIMEOUT_S, Snapshot
from app.ops.exceptions_cli import FLUSH_S, AvroOutputs, OpsError, existing_topics, make_producer, read_ledger_if_any
from app.readmodels.exception_ledger import Entry
from app.readmodels.replay import (
    Candidate,
    Criteria,
    Injection,
    Origin,
    Selection,
    closing_records,
    from_dead_letter,
    from_exception_record,
    plan,
    render_plan,
    select,
    summary,
)
from app.settings import Settings

DEAD_LETTER = "sync.dead-letter"
EXCEPTIONS = "sync.exceptions"
SKIP_LINES = 20  # skipped candidates named one per line; the rest are counted


@dataclass
class Result:
    selection: Selection
    planned: list[Injection]
    dry_run: bool
    limit: int | None
    replayed: list[Injection] = field(default_factory=list)
    failed: list[tuple[Injection, str]] = field(default_factory=list)  # the replay itself was not delivered
    unclosed: list[tuple[Injection, str]] = field(default_factory=list)  # replayed, audit/resolution not delivered
    undecodable: int = 0  # exception records that did not decode

    @property
    def ok(self) -> bool:
        return not self.failed and not self.unclosed

    def summary(self) -> str:
        done = len(self.planned) if self.dry_run else len(self.replayed)
        text = summary(self.selection, done, len(self.failed), self.limit, self.dry_run)
        if self.unclosed:
            text += f"; {len(self.unclosed)} replayed but not closed (audit/resolution undelivered)"
        if self.undecodable:
            text += f"; {self.undecodable} exception record(s) undecodable"
        return text


def _where(msg: Message) -> str:
    return f"{msg.topic()}/{msg.partition()}/{msg.offset()}"


def read_candidates(s: Settings, origin: Origin, timeout_s: float = TIMEOUT_S) -> tuple[list[Candidate], int]:
    """Every candidate of ``origin`` in time order, and how many exception records did not decode."""
    out: list[Candidate] = []
    bad = 0
    if origin is Origin.DEAD_LETTER:

        def handle(msg: Message) -> None:
            kind, ts = msg.timestamp()
            stamp = None if kind == TIMESTAMP_NOT_AVAILABLE else ts
            out.append(from_dead_letter(msg.key(), msg.value(), msg.headers(), _where(msg), stamp))

        topic = s.topic(DEAD_LETTER)
    else:
        registry = SchemaRegistryClient(registry_config(s, {"timeout": 30}))
        deserialize = AvroDeserializer(registry, conf={"subject.name.strategy": topic_subject_name_strategy})

        def handle(msg: Message) -> None:
            nonlocal bad
            if msg.value() is None:
                return
            try:
                record = deserialize(msg.value(), SerializationContext(msg.topic(), MessageField.VALUE))
                candidate = from_exception_record(record, _where(msg))
            except Exception:  # not an ExceptionRecord, or its schema is gone: counted, never fatal
                bad += 1
                return
            if candidate.value is not None:  # only records carrying the original bytes are replay candidates
                out.append(candidate)

        topic = s.topic(EXCEPTIONS)
    with Snapshot(s, "replay", timeout_s) as snapshot:
        missing = "create the catalog topics with `crm-erp-sync topics apply`"
        for msg in snapshot.messages(topic, snapshot.ends(topic, missing)):
            handle(msg)
    out.sort(key=lambda c: (c.at_ms is None, c.at_ms or 0, c.found_at))
    return out, bad


def run(
    s: Settings,
    criteria: Criteria,
    origin: Origin = Origin.DEAD_LETTER,
    dry_run: bool = False,
    rate: float = 50.0,
    limit: int | None = None,
    operator: str = "operator",
    include_resolved: bool = False,
    say: Callable[[str], None] = print,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Result:
    """Select, then (unless ``dry_run``) replay, audit and close; progress lines go to ``say``."""
    if rate <= 0:
        raise ValueError("rate must be positive")
    ledger = read_ledger_if_any(s)
    if ledger is None:
        say("no exception ledger yet: nothing is known to be resolved, every match is a candidate")
    candidates, undecodable = read_candidates(s, origin)
    producer = make_producer(s)
    resolved = set() if include_resolved else {i for i, e in (ledger or {}).items() if e.resolved}
    selection = select(candidates, criteria, resolved, existing_topics(producer, s))
    chosen = selection.selected if limit is None else selection.selected[:limit]
    planned = [plan(c, uuid.uuid4().hex, operator) for c in chosen]
    result = Result(selection, planned, dry_run, limit, undecodable=undecodable)
    for c, why in selection.skipped[:SKIP_LINES]:
        say(f"skip {c.exception_id}: {why}")
    if len(selection.skipped) > SKIP_LINES:
        say(f"... and {len(selection.skipped) - SKIP_LINES} more skipped")
    if dry_run:
        if planned:
            say("dry run: would re-inject (nothing is produced)")
            for line in render_plan(planned):
                say(line)
        say(result.summary())
        return result
    _replay(s, producer, planned, ledger or {}, operator, rate, result, say, clock, sleep)
    say(result.summary())
    return result


def _replay(
    s: Settings,
    producer: Producer,
    planned: list[Injection],
    ledger: dict[str, Entry],
    operator: str,
    rate: float,
    result: Result,
    say: Callable[[str], None],
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> None:
    outputs = AvroOutputs(s, producer)
    start = clock()
    for i, inj in enumerate(planned):
        wait = start + i / rate - clock()
        if wait > 0:
            sleep(wait)
        c = inj.candidate
        entry = ledger.get(c.exception_id)
        closing = closing_records(inj, operator, dt.datetime.now(dt.UTC), entry.correlation_id if entry else None)
        encoded = [outputs.encode(o) for o in closing]  # OpsError here: nothing of this one was produced
        errors: list[str] = []

        def delivered(err, _msg, errors=errors) -> None:
            if err is not None:
                errors.append(str(err))

        producer.produce(inj.topic, key=inj.key, value=inj.value, headers=inj.headers, on_delivery=delivered)
        if producer.flush(FLUSH_S) and not errors:
            errors.append(f"not delivered within {FLUSH_S}s")
        if errors:
            result.failed.append((inj, "; ".join(errors)))
            say(f"FAILED {c.exception_id} -> {inj.topic}: {'; '.join(errors)}")
            continue
        result.replayed.append(inj)
        say(f"replayed {c.exception_id} -> {inj.topic} as {inj.replay_id} (replay #{inj.replay_count})")
        try:
            outputs.send(encoded)
        except OpsError as exc:
            result.unclosed.append((inj, str(exc)))
            say(f"NOT CLOSED {c.exception_id}: {exc}")
