"""Escalation routing: which team, channel and mode an open exception or drift alert past its SLA goes to.

The routes are data (``app/rules/escalation.toml``, ``CRM_ERP_ESCALATION_RULES``); the first
route whose match holds wins. ``min_amount_at_risk`` is in the rate table's base currency: an
amount at risk is converted first (``app.domain.fx``); one in a currency the table lacks is
compared as it is. A drift alert's SLA is per severity (``[alert_sla_minutes]``); its ``kind``
can be matched. Delivering to chat or paging tools is out of scope: the escalation record on
``sync.escalations`` is the integration point. No Faust, no I/O beyond reading the file.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from app.domain.fx import Rates

MODES = ("PAGE", "TICKET")
MATCH_KEYS = {"reason", "severity", "type", "kind", "min_amount_at_risk", "customer_facing"}
ALERT_SLA_MINUTES: dict[str, float] = {"CRITICAL": 60, "HIGH": 4 * 60, "MEDIUM": 24 * 60, "LOW": 3 * 24 * 60}


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    match: dict[str, Any]
    team: str
    channel: str
    mode: str

    def matches(self, exception: dict[str, Any], rates: Rates | None = None) -> bool:
        """``exception``: an exception record, or a drift alert's (``kind``, no ``exception_type``)."""
        m = self.match
        if "reason" in m and exception.get("reason_code") not in m["reason"]:
            return False
        if "kind" in m and exception.get("kind") not in m["kind"]:
            return False
        if "severity" in m and exception["severity"] not in m["severity"]:
            return False
        if "type" in m and exception.get("exception_type") not in m["type"]:
            return False
        if "customer_facing" in m and bool(exception.get("customer_facing")) != m["customer_facing"]:
            return False
        if "min_amount_at_risk" in m:
            amount = exception.get("amount_at_risk")
            if amount is None:
                return False
            value = Decimal(str(amount))
            converted = rates.to_base(value, exception.get("currency")) if rates is not None else None
            if (converted if converted is not None else value) < Decimal(str(m["min_amount_at_risk"])):
                return False
        return True


def load(path: Path) -> list[Route]:
    data = tomllib.loads(path.read_text())
    routes = []
    for i, r in enumerate(data.get("route", [])):
        unknown = set(r.get("match", {})) - MATCH_KEYS
        if unknown or r.get("mode") not in MODES or not r.get("team") or not r.get("channel"):
            raise ValueError(f"{path}: route {i} ({r.get('name')}): needs team, channel, mode in {MODES}; "
                             f"unknown match keys {sorted(unknown)}")  # fmt: skip
        routes.append(Route(r.get("name", f"route-{i}"), r.get("match", {}), r["team"], r["channel"], r["mode"]))
    if not routes or routes[-1].match:
        raise ValueError(f"{path}: the last route must match everything (no `match`)")
    return routes


def alert_slas(path: Path) -> dict[str, float]:
    """Minutes a drift alert of each severity may stay open unacknowledged before it is escalated."""
    table = tomllib.loads(path.read_text()).get("alert_sla_minutes", {})
    unknown = set(table) - set(ALERT_SLA_MINUTES)
    if unknown or any(not isinstance(v, int | float) or v <= 0 for v in table.values()):
        raise ValueError(f"{path}: [alert_sla_minutes] takes positive minutes for {sorted(ALERT_SLA_MINUTES)}")
    return {**ALERT_SLA_MINUTES, **table}


def route_for(routes: list[Route], exception: dict[str, Any], rates: Rates | None = None) -> Route:
    """The first matching route, with ``{owner_team}`` filled in from the exception (an alert's
    ``suggested_owner``)."""
    for r in routes:
        if r.matches(exception, rates):
            owner = exception.get("owner_team") or exception.get("suggested_owner") or "integration-platform"
            return Route(r.name, r.match, r.team.format(owner_team=owner), r.channel.format(owner_team=owner), r.mode)
    raise AssertionError("unreachable: the last route matches everything")


def due_at(exception: dict[str, Any]) -> dt.datetime:
    """When the exception's SLA to resolve runs out."""
    raised = dt.datetime.fromisoformat(str(exception["raised_at"]))
    return raised + dt.timedelta(minutes=int(exception["sla_minutes"]))


def escalation(exception: dict[str, Any], route: Route, now: dt.datetime) -> dict[str, Any]:
    """The ``Escalation`` record (JSON-mode values)."""
    overdue = max(0, int((now - due_at(exception)).total_seconds() // 60))
    return {
        "escalation_id": f"esc:{exception['exception_id']}",
        "exception_id": exception["exception_id"],
        "route_team": route.team,
        "channel": route.channel,
        "mode": route.mode,
        "reason_code": exception["reason_code"],
        "severity": exception["severity"],
        "amount_at_risk": exception.get("amount_at_risk"),
        "currency": exception.get("currency"),
        "overdue_minutes": overdue,
        "escalated_at": now.isoformat(),
    }
