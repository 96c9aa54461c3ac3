"""The exception ledger flow: every exception, resolution and SLA check folded into one row per
exception id (``exception-ledger``), with when its SLA runs out or, once resolved, its retention
(``escalation-due``, read by the timer, which sends a check). A resolved row past its retention is
tombstoned. The rules are ``app.domain.exceptions.state`` and ``app.domain.exceptions.escalation``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import orjson

from app.domain.exceptions import state as exception_state
from app.domain.exceptions.escalation import Route
from app.domain.fx import Rates
from app.flows.step import Step, Tables, Write, put

LEDGER, DUE = "exception-ledger", "escalation-due"


@dataclass(frozen=True, slots=True)
class Context:
    routes: list[Route]
    now: dt.datetime
    retention: dt.timedelta
    rates: Rates | None = None  # escalation thresholds in the base currency (app.domain.fx)


def step(tables: Tables, key: bytes, message: dict[str, Any], ctx: Context) -> Step:
    raw = tables[LEDGER].get(key)
    row = orjson.loads(raw) if raw else None
    forget = exception_state.forget_at_ms(row, ctx.retention)
    if "check" in message and forget is not None and ctx.now.timestamp() * 1000 >= forget:
        return Step([Write(table, key, None) for table in (LEDGER, DUE) if key in tables[table]])
    if "exception" in message:
        row, outs = exception_state.on_exception(row, message["exception"], ctx.now)
    elif "resolution" in message:
        row, outs = exception_state.on_resolution(row, message["resolution"], ctx.now)
    else:
        row, outs = exception_state.on_check(row, ctx.routes, ctx.now, ctx.rates)
    if row is None:
        return Step()
    writes: list[Write] = put(tables, LEDGER, key, orjson.dumps(row))
    due = exception_state.escalation_due_ms(row) or exception_state.forget_at_ms(row, ctx.retention)
    writes += put(tables, DUE, key, None if due is None else str(due).encode())
    return Step(writes, list(outs))
