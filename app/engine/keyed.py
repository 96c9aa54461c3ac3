"""Keyed steps with an outbox: every keyed flow's outputs survive a crash until their input is committed.

Why: a flow that writes its state and then sends its outputs loses them if the worker dies in
between. The redelivered input then finds its effect already in state and sends nothing (a drift
alert, an escalation, a customer upsert gone). The engine closes the window for every flow the
same way, so no flow has to remember recent decisions of its own:

1. look up the outbox entry of this very input (topic, partition, offset); if there is one, the
   input is a redelivery: apply that entry's writes again (only the key's newest entry keeps them:
   the writes of the ones before were applied before it was made) and re-send its records, byte for
   byte (same ids); the step is not run again;
2. otherwise run the step (pure: reads tables, returns writes and outputs), validate and encode
   its outputs (``Wire.prepare``: a registry failure here leaves nothing half-done);
3. write the entry row first, holding this input's writes and records, then the key's head row
   naming it, after stripping the writes of the entry it supersedes. The entry is the step's one
   atomic record: a crash after it replays it. The rows live in the flow's own table (keys under
   ``OUTBOX_PREFIX``), so that table's changelog holds them before the state rows written after
   them: a worker restoring the table elsewhere after a crash never sees a step's state without
   its entry;
4. apply the writes, then send the records;
5. drop entry rows whose input offset is committed, the oldest few per step, in the partition of
   the step (tables are written only in the event's partition). Rows whose input was committed
   after the stream went idle wait for the partition's next step.

One row per input, not one per key holding a list: a key that takes many inputs per commit
interval (the parity flow's few currency buckets take every deal's facts) made each step decode
and rewrite every entry of the interval, a quarter of the worker's time in a py-spy profile
(docs/performance.md, 7 Dec 2026). Now a step touches its own row, the key's head and the entry
before it. Rows of the older layout (one per key) are still replayed and pruned.

Fail-points ``<flow>.after_state`` and ``<flow>.after_send`` (``app/engine/failpoints.py``) kill
the worker between 3-4 and 4-5. This module knows no Faust: ``Wire`` and the mappings are Faust's
tables and producer in the worker, dicts and lists in ``tests/support/driver.py``.
"""

from __future__ import annotations

import base64
import itertools
import logging
import time
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass, replace
from typing import Protocol

import orjson

from app.domain.outputs import Output
from app.engine.failpoints import FailPoints, die
from app.flows.step import OUTBOX_PREFIX, Message, Step, Tables, Write

log = logging.getLogger(__name__)
PRUNE_PER_STEP = 16  # committed outbox rows dropped per step (more would lengthen one step for nothing)


@dataclass(frozen=True, slots=True)
class Record:
    """An output encoded for the broker: full topic name, key, value, headers."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    partition: int | None = None  # None: by key


@dataclass(frozen=True, slots=True)
class Input:
    topic: str
    partition: int
    offset: int
    key: bytes


class Wire(Protocol):
    async def prepare(self, outputs: list[Output | Message]) -> list[Record]: ...

    async def send(self, records: list[Record]) -> None: ...

    async def flush(self) -> None: ...

    def committed(self, topic: str, partition: int) -> int | None:
        """The partition's committed offset (the next to read), None if unknown."""
        ...

    def observe(self, stage: str, seconds: float) -> None:
        """Time spent in a stage of a step: decide, encode, state, send."""
        ...


@dataclass(frozen=True, slots=True)
class Entry:
    topic: str
    partition: int
    offset: int
    writes: tuple[Write, ...]
    records: tuple[Record, ...]


def _b(raw: bytes | None) -> str | None:
    """Bytes as JSON text: UTF-8 as it is (table values are JSON), anything else in base64."""
    if raw is None:
        return None
    try:
        return "s" + raw.decode()
    except UnicodeDecodeError:
        return "b" + base64.b64encode(raw).decode()


def _u(text: str | None) -> bytes | None:
    if text is None:
        return None
    return text[1:].encode() if text[0] == "s" else base64.b64decode(text[1:])


def _entry_json(e: Entry) -> dict:
    return {
        "t": e.topic,
        "p": e.partition,
        "o": e.offset,
        "w": [[w.table, _b(w.key), _b(w.value)] for w in e.writes],
        "r": [[r.topic, _b(r.key), _b(r.value), [[k, _b(v)] for k, v in r.headers], r.partition] for r in e.records],
    }


def _entry(e: dict) -> Entry:
    return Entry(
        e["t"],
        e["p"],
        e["o"],
        tuple(Write(t, _u(k) or b"", _u(v)) for t, k, v in e["w"]),
        tuple(Record(t, _u(k), _u(v), tuple((hk, _u(hv) or b"") for hk, hv in h), p) for t, k, v, h, p in e["r"]),
    )


def encode(entry: Entry) -> bytes:
    """One entry row."""
    return orjson.dumps(_entry_json(entry))


def decode(raw: bytes) -> Entry:
    return _entry(orjson.loads(raw))


def decode_legacy(raw: bytes | None) -> list[Entry]:
    """A row of the layout before 0.3 (one row per input key holding a list of entries), left by a
    worker of that version: still replayed and pruned, never written."""
    return [_entry(e) for e in orjson.loads(raw)] if raw else []


HEAD, ENTRY = b"\x01", b"\x02"  # after OUTBOX_PREFIX; a legacy row has the input key there (never a control byte)


def entry_key(prefix: bytes, inp: Input) -> bytes:
    """The row of one input's entry: unique per input, found again from the redelivered input alone."""
    return b"%s%s%s\x00%d\x00%d\x00%s" % (prefix, ENTRY, inp.topic.encode(), inp.partition, inp.offset, inp.key)


def head_key(prefix: bytes, key: bytes) -> bytes:
    """The row naming the newest entry of an input key: the one entry of the key that keeps its writes."""
    return prefix + HEAD + key


def rows_with(items: Iterable[tuple[bytes, bytes]], prefix: bytes) -> list[tuple[bytes, bytes]]:
    return [(k, v) for k, v in items if k.startswith(prefix)]


class KeyedRunner:
    """Runs one flow's steps over its tables with an outbox (one instance per flow and process).
    ``outbox``: the flow's table that holds the state its steps decide from."""

    def __init__(
        self, flow: str, tables: Tables, outbox: MutableMapping[bytes, bytes], wire: Wire, failpoints: FailPoints
    ) -> None:
        self.flow = flow
        self._tables = tables
        self._outbox = outbox
        self._wire = wire
        self._failpoints = failpoints
        self._prefix = OUTBOX_PREFIX
        # input partition -> entry row -> (its input offset, its input key; None for a legacy row), oldest first
        self._pending: dict[tuple[str, int], dict[bytes, tuple[int, bytes | None]]] = {}
        self._scanned = False

    async def run(self, inp: Input, step: Callable[[], Step]) -> Step | None:
        """Run ``step`` for ``inp``; None when ``inp`` is a redelivery and its stored outputs were re-sent."""
        tp = (inp.topic, inp.partition)
        if not self._scanned:
            self._scan()
        row_key = entry_key(self._prefix, inp)
        stored = self._stored(row_key, inp)
        if stored is not None:
            self._apply(stored.writes)
            await self._wire.send(list(stored.records))
            log.info("%s: %s/%s/%s redelivered, %d stored output(s) sent again", self.flow, *tp, inp.offset,
                     len(stored.records))  # fmt: skip
            return None
        t0 = time.perf_counter()
        done = step()
        t1 = time.perf_counter()
        records = await self._wire.prepare(done.outputs)
        t2 = time.perf_counter()
        if done.writes or records:
            self._store(row_key, inp, Entry(inp.topic, inp.partition, inp.offset, tuple(done.writes), tuple(records)))
        self._apply(done.writes)
        t3 = time.perf_counter()
        await self._fail("after_state", records)
        await self._wire.send(records)
        await self._fail("after_send", records)
        self._prune(tp)
        wire = self._wire
        wire.observe("decide", t1 - t0)
        wire.observe("encode", t2 - t1)
        wire.observe("state", t3 - t2)
        wire.observe("send", time.perf_counter() - t3)
        return done

    def _stored(self, row_key: bytes, inp: Input) -> Entry | None:
        """The entry stored for ``inp`` (in a legacy row too), None when it was not processed yet."""
        raw = self._outbox.get(row_key)
        if raw is not None:
            return decode(raw)
        legacy = self._outbox.get(self._prefix + inp.key)
        for e in decode_legacy(legacy):
            if (e.topic, e.partition, e.offset) == (inp.topic, inp.partition, inp.offset):
                return e
        return None

    def _store(self, row_key: bytes, inp: Input, entry: Entry) -> None:
        """Write ``entry``'s row first, as the key's newest: the entry it supersedes loses its writes
        (they were applied before this step began; replaying them later would undo this one)."""
        head = head_key(self._prefix, inp.key)
        previous = self._outbox.get(head)
        if previous is not None and previous != row_key:
            raw = self._outbox.get(previous)
            if raw is not None:
                older = decode(raw)
                if older.writes:
                    self._outbox[previous] = encode(replace(older, writes=()))
        self._outbox[row_key] = encode(entry)
        self._outbox[head] = row_key
        self._pending.setdefault((inp.topic, inp.partition), {})[row_key] = (inp.offset, inp.key)

    def _apply(self, writes: tuple[Write, ...] | list[Write]) -> None:
        for w in writes:
            table = self._tables[w.table]
            if w.value is None:
                table.pop(w.key, None)
            else:
                table[w.key] = w.value

    def _is_committed(self, e: Entry) -> bool:
        committed = self._wire.committed(e.topic, e.partition)
        return committed is not None and e.offset < committed

    def _prune(self, tp: tuple[str, int]) -> None:
        """Drop the oldest few entry rows of this input partition whose input is committed (tables are
        written only in the step's partition)."""
        pending = self._pending.get(tp)
        committed = self._wire.committed(*tp)
        if not pending or committed is None:
            return
        done = [
            (k, key) for k, (offset, key) in itertools.islice(pending.items(), PRUNE_PER_STEP) if offset < committed
        ]
        for row_key, key in done:
            del pending[row_key]
            if key is None:  # a legacy row: its entries may span input partitions
                if all(self._is_committed(e) for e in decode_legacy(self._outbox.get(row_key))):
                    self._outbox.pop(row_key, None)
                continue
            self._outbox.pop(row_key, None)
            head = head_key(self._prefix, key)
            if self._outbox.get(head) == row_key:
                del self._outbox[head]

    def _scan(self) -> None:
        """Index the rows a previous run left (recovered from the changelog), so they are pruned.

        Once per process, at its first step, over the outbox rows only (their keys sort before every
        other key: ``Table.prefixed`` reads each RocksDB from the prefix and stops after it). Rows of
        partitions assigned later go when their key is next stepped (a previous owner's uncommitted
        stretch at most)."""
        self._scanned = True
        prefixed = getattr(self._outbox, "prefixed", None)  # the worker's tables read just the prefix
        found = prefixed(self._prefix) if prefixed else rows_with(self._outbox.items(), self._prefix)
        for row_key, raw in list(found):
            kind = row_key[len(self._prefix) : len(self._prefix) + 1]
            if kind == HEAD:
                continue
            if kind == ENTRY:
                e = decode(raw)
                key = row_key.split(b"\x00", 3)[3]  # topic, partition, offset, then the key (any bytes)
                self._pending.setdefault((e.topic, e.partition), {})[row_key] = (e.offset, key)
                continue
            for e in decode_legacy(raw):
                pending = self._pending.setdefault((e.topic, e.partition), {})
                pending[row_key] = (max(e.offset, pending.get(row_key, (-1, None))[0]), None)
        for tp, pending in self._pending.items():
            self._pending[tp] = dict(sorted(pending.items(), key=lambda item: item[1][0]))

    async def _fail(self, point: str, records: list[Record]) -> None:
        if not self._failpoints:
            return
        name = f"{self.flow}.{point}"
        if self._failpoints.due(name, (r.topic for r in records)):
            if point == "after_send":
                await self._wire.flush()  # the outputs on the broker, the input not committed
            die(name)
