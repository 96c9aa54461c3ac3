"""The simulated ERP's customer master: customer commands in, customer events out.

An UPSERT for an account without a customer number creates a customer (a new ``C-9xxxxx`` number,
a credit limit, sometimes a credit hold) and answers ``CREATED``; for a customer it has (or a number
it issued before the simulation began) it answers ``UPDATED``. DEACTIVATE answers ``DEACTIVATED``;
MERGE answers ``MERGED`` with the surviving customer's number. A command id seen before is
answered again with the same event id (the service drops it as a duplicate). Answers come
``customer_delay`` seconds later (with jitter), and the ERP's usual faults apply: an answer is lost
(``customer_drop_rate``) or delivered twice (``duplicate_rate``).

Pure like ``ErpSystem``: no Kafka, no clock; records are Avro-ready ``ErpCustomerEvent`` values.
"""

from __future__ import annotations

import datetime as dt
import heapq
import random
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.sim.erp_system import ErpConfig

CREDIT_LIMITS = (Decimal("50000.00"), Decimal("100000.00"), Decimal("250000.00"))


@dataclass
class Customer:
    account_id: str
    number: str
    status: str = "ACTIVE"
    credit_limit: Decimal = CREDIT_LIMITS[0]
    currency: str = "EUR"
    credit_hold: bool = False
    payment_terms: str | None = None
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)  # command id -> the event it got


@dataclass
class CustomerSummary:
    commands: Counter = field(default_factory=Counter)  # by action
    events: Counter = field(default_factory=Counter)  # delivered, by kind
    dropped: int = 0
    duplicated: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "commands": dict(self.commands),
            "events": dict(self.events),
            "dropped": self.dropped,
            "duplicated": self.duplicated,
        }


def _command(value: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(command id, the command record) of a ``CustomerCommand`` as decoded or as the service's JSON."""
    return value["envelope"]["command_id"], value["command"]


class CustomerBook:
    """The ERP's customers (by CRM account id) and the answers it has yet to publish."""

    def __init__(self, rng: random.Random, config: ErpConfig, system: str, summary: CustomerSummary) -> None:
        self.rng, self.config, self.system, self.summary = rng, config, system, summary
        self.customers: dict[str, Customer] = {}
        self._numbers = 0
        self._queue: list[tuple[float, int, dict[str, Any]]] = []
        self._tie = 0

    def on_command(self, value: dict[str, Any], now: float) -> list[dict[str, Any]]:
        """Apply one customer command; the events it schedules."""
        command_id, cmd = _command(value)
        action = str(cmd.get("action") or "UPSERT")
        self.summary.commands[action] += 1
        account_id = cmd["account_id"]
        customer = self.customers.get(account_id)
        if customer is not None and command_id in customer.answers:
            return self._schedule(customer.answers[command_id], now)  # a re-send: the same answer
        if action == "UPSERT":
            known = customer is not None or bool(cmd.get("customer_number"))  # a number the ERP issued before
            kind = "UPDATED" if known else "CREATED"
            customer = customer or self._create(account_id, cmd.get("customer_number"))
            customer.status = "ACTIVE"
            customer.payment_terms = cmd.get("payment_terms") or customer.payment_terms
            customer.currency = cmd.get("currency") or customer.currency
        elif customer is None:
            return []  # deactivating or merging a customer the ERP never had: nothing to say
        elif action == "DEACTIVATE":
            kind, customer.status = "DEACTIVATED", "DEACTIVATED"
        elif action == "MERGE":
            kind, customer.status = "MERGED", "MERGED"
        else:
            return []
        merged_into = None
        if kind == "MERGED":
            survivor = self.customers.get(cmd.get("merged_into_account_id") or "")
            merged_into = cmd.get("merged_into_customer_number") or (survivor.number if survivor else None)
        event = self._event(customer, kind, command_id, merged_into, now)
        customer.answers[command_id] = event
        return self._schedule(event, now)

    def due(self, now: float) -> list[dict[str, Any]]:
        out = []
        while self._queue and self._queue[0][0] <= now:
            _, _, event = heapq.heappop(self._queue)
            self.summary.events[event["kind"]] += 1
            out.append(event)
        return out

    def pending(self) -> int:
        return len(self._queue)

    def next_due(self) -> float | None:
        return self._queue[0][0] if self._queue else None

    def _create(self, account_id: str, number: str | None) -> Customer:
        if number is None:
            self._numbers += 1
            number = f"C-9{self._numbers:05d}"
        customer = Customer(
            account_id,
            number,
            credit_limit=self.rng.choice(CREDIT_LIMITS),
            credit_hold=self.rng.random() < self.config.customer_hold_rate,
        )
        self.customers[account_id] = customer
        return customer

    def _event(self, c: Customer, kind: str, command_id: str, merged_into: str | None, now: float) -> dict[str, Any]:
        at = now + self._delay()
        return {
            "event_id": f"{command_id}:{kind.lower()}",
            "account_id": c.account_id,
            "command_id": command_id,
            "kind": kind,
            "customer_number": c.number,
            "credit_limit": c.credit_limit,
            "currency": c.currency,
            "credit_hold": c.credit_hold,
            "payment_terms": c.payment_terms,
            "merged_into_customer_number": merged_into,
            "occurred_at": dt.datetime.fromtimestamp(at, dt.UTC),
            "erp_system": self.system,
        }

    def _schedule(self, event: dict[str, Any], now: float) -> list[dict[str, Any]]:
        if self.rng.random() < self.config.customer_drop_rate:
            self.summary.dropped += 1
            return []
        copies = 2 if self.rng.random() < self.config.duplicate_rate else 1
        self.summary.duplicated += copies - 1
        at = max(now, event["occurred_at"].timestamp())
        for _ in range(copies):
            self._tie += 1
            heapq.heappush(self._queue, (at, self._tie, event))
        return [event] * copies

    def _delay(self) -> float:
        c = self.config
        return max(0.0, c.customer_delay * (1 + self.rng.uniform(-c.jitter, c.jitter)))
