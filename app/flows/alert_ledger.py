"""The drift alert ledger flow: alert records, operator actions and SLA checks folded into one row per
alert id (``alert-ledger``), with when its SLA runs out or, once resolved, its retention
(``alert-escalation-due``, read by the timer, which sends a check). A resolved row past its
retention is tombstoned. The rules are ``app.domain.alert_ledger``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from app.domain import alert_ledger as rules
from app.domain.exceptions.escalation import Route
from app.domain.fx import Rates
from app.flows.step import Step, Tables, Write, put

LEDGER, DUE = "alert-ledger", "alert-escalation-due"


@dataclass(frozen=True, slots=True)
class Context:
    routes: list[Route]
    slas: dict[str, float]  # minutes per severity
    rates: Rates | None
    now: dt.datetime
    retention: dt.timedelta


def step(tables: Tables, key: bytes, message: dict[str, Any], ctx: Context) -> Step:
    """``message``: ``{"alert": DriftAlert}``, ``{"action": AlertAction}`` (JSON-mode) or ``{"check": true}``."""
    raw = tables[LEDGER].get(key)
    row = rules.Row.model_validate_json(raw) if raw else None
    forget = rules.forget_at_ms(row, ctx.retention)
    if "check" in message and forget is not None and ctx.now.timestamp() * 1000 >= forget:
        return Step([Write(table, key, None) for table in (LEDGER, DUE) if key in tables[table]])
    outputs: list = []
    if "alert" in message:
        row = rules.on_alert(row, message["alert"], ctx.now)
    elif "action" in message:
        row = rules.on_action(row, rules.Action.model_validate(message["action"]), ctx.now)
    else:
        row, outputs = rules.on_check(row, ctx.routes, ctx.slas, ctx.rates, ctx.now)
    if row is None:
        return Step()
    writes: list[Write] = put(tables, LEDGER, key, row.model_dump_json().encode())
    due = rules.due_ms(row, ctx.slas) or rules.forget_at_ms(row, ctx.retention)
    writes += put(tables, DUE, key, None if due is None else str(due).encode())
    return Step(writes, outputs)
