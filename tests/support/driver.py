"""The engine's keyed runner without Kafka: dict tables, a list of sends, commits and crashes by hand.

Runs a flow's real step (``app/flows/``) through the real ``KeyedRunner`` (outbox, redelivery,
pruning) over dicts, so a test can check what a flow stores and sends, and what a crash at each
point leaves, without a worker subprocess or sleeps. Outputs are validated against their contract
as the worker's encoder does, then carried as JSON (the registry's Avro is the integration tests').
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from app.contracts.models import model
from app.domain.outputs import JSON, Output
from app.engine import keyed
from app.engine.failpoints import FailPoints
from app.engine.keyed import Entry, Input, KeyedRunner, Record
from app.engine.routes import headers as wire_headers
from app.engine.routes import record, route
from app.flows.step import OUTBOX_PREFIX, Message, Step, rows


class Crash(Exception):
    """The process died here (what ``kill -9`` does at a fail-point)."""


class MemoryWire:
    def __init__(self) -> None:
        self.sent: list[Record] = []
        self.offsets: dict[tuple[str, int], int] = {}
        self.crash_at: str | None = None  # "after_state": the next send dies before anything goes out

    async def prepare(self, outputs: list[Output | Message]) -> list[Record]:
        records = []
        for out in outputs:
            if isinstance(out, Message):
                records.append(Record(out.topic, out.key, out.value, out.headers, out.partition))
                continue
            where, value = route(out), record(out)
            if where.contract != JSON:
                model(where.contract).model_validate(value)  # as the worker's encoder does
            headers = tuple((k, v.encode()) for k, v in wire_headers(out))
            records.append(Record(where.topic, out.key.encode(), orjson.dumps(value), headers, out.partition))
        return records

    async def send(self, records: list[Record]) -> None:
        if self.crash_at == "after_state":
            self.crash_at = None
            raise Crash("after_state")
        self.sent += records
        if self.crash_at == "after_send":
            self.crash_at = None
            raise Crash("after_send")

    async def flush(self) -> None:
        return None

    def committed(self, topic: str, partition: int) -> int | None:
        return self.offsets.get((topic, partition))

    def observe(self, stage: str, seconds: float) -> None:
        return None


class Driver:
    """One flow over in-memory tables (its outbox rows in table ``outbox``, as in the worker);
    ``restart`` keeps the tables (the state dir) and forgets the rest."""

    def __init__(self, flow: str, tables: Iterable[str], outbox: str) -> None:
        self.flow = flow
        self.tables: dict[str, dict[bytes, Any]] = {name: {} for name in tables}
        self.outbox_table = outbox
        self.wire = MemoryWire()
        self.restart()

    def restart(self) -> None:
        outbox = self.tables[self.outbox_table]
        self.runner = KeyedRunner(self.flow, self.tables, outbox, self.wire, FailPoints(""))

    @property
    def outbox(self) -> dict[bytes, bytes]:
        """The outbox rows (entry rows and head rows, keys under ``OUTBOX_PREFIX``)."""
        return {k: v for k, v in self.tables[self.outbox_table].items() if k.startswith(OUTBOX_PREFIX)}

    @property
    def entries(self) -> dict[bytes, Entry]:
        """The outbox's entry rows, decoded."""
        return {k: keyed.decode(v) for k, v in self.outbox.items() if k.startswith(OUTBOX_PREFIX + keyed.ENTRY)}

    def state(self, table: str) -> dict[bytes, Any]:
        """A table's rows without the outbox rows."""
        return dict(rows(self.tables[table].items()))

    def run(self, inp: Input, step: Callable[[], Step]) -> Step | None:
        return asyncio.run(self.runner.run(inp, step))

    def commit(self, topic: str, partition: int, next_offset: int) -> None:
        self.wire.offsets[(topic, partition)] = next_offset

    def sent(self, topic: str | None = None) -> list[dict[str, Any]]:
        """JSON values sent (to ``topic``), in order, repeats included."""
        return [orjson.loads(r.value) for r in self.wire.sent if r.value and (topic is None or r.topic == topic)]


def inp(delivery: str, key: str | bytes) -> Input:
    """An ``Input`` from ``topic/partition/offset`` coordinates."""
    topic, partition, offset = delivery.rsplit("/", 2)
    return Input(topic, int(partition), int(offset), key if isinstance(key, bytes) else key.encode())


def apply_step(tables: dict[str, dict[bytes, Any]], step: Step) -> Step:
    """Apply ``step``'s writes to ``tables`` as the engine would (no outbox): for tests of one step."""
    for w in step.writes:
        if w.value is None:
            tables[w.table].pop(w.key, None)
        else:
            tables[w.table][w.key] = w.value
    return step
