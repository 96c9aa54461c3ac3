"""A simulated ERP: sales-order commands in, order events out, with the faults a real ERP has.

``ErpSystem(seed, config)`` is the ERP's order book and its plan of what to say when.
``on_command(value, now)`` takes one ``SalesOrderCommand`` (as decoded from Avro, union branch as
a ``(name, record)`` tuple, or as the service's JSON-mode output with a ``"-type"`` key) and returns
the events it schedules, each a ``Delivery(at, delay, event, ...)``; ``due(now)`` hands out the
events whose time has come, in delivery order. Orders are upserted by ``command_id``: a create sent
again (the service's auto-heal, a retry tier, a redelivery) never opens a second order, it
re-acknowledges with the same event id as before, which the service drops as a duplicate.

Lifecycle of an accepted order: OrderAccepted → OrderShipped (complete; optionally in two
shipments) → OrderInvoiced → PaymentReceived, ``*_delay`` seconds apart (with jitter). An order
billed on milestones (billing schedule ``MILESTONE``) is activated and accepted by the customer
between shipment and invoice (``ErpMilestoneEvent`` records, for ``erp.events.milestone``). An amend
re-confirms the order (a new OrderAccepted with the new amount) and re-plans the steps that have not
happened yet; a cancel withdraws whatever has not been delivered yet.

Faults (``ErpConfig`` shares, each rolled once per order), and the drift alert each produces:

- ``reject_rate``: OrderRejected (retryable or not): an ERP_REJECTED exception, not drift
- ``ignore_rate``: the ERP never answers the order (nor its re-sends) → MISSING_EVENT (accepted)
- ``drop_rate``: each event lost on its way, independently → MISSING_EVENT (shipped, invoiced, paid),
  or LIFECYCLE_GAP when a later step arrives without its acceptance
- ``amount_drift_rate``: accepted at another amount → AMOUNT_MISMATCH (closed-won vs accepted)
- ``invoice_drift_rate``: invoiced at another amount → AMOUNT_MISMATCH (invoiced vs accepted)
- ``line_drift_rate``: one line shipped in another quantity → LINE_MISMATCH
- ``out_of_order_rate``: shipped before accepted, or paid before invoiced → LIFECYCLE_GAP, resolved
  when the late event arrives
- ``overpay_rate``: more paid than invoiced → LIFECYCLE_GAP (overpaid)
- ``phantom_rate``: an OrderAccepted for an order the service never commanded → LIFECYCLE_GAP
- ``ship_after_cancel_rate``: a cancelled order still ships and invoices → LIFECYCLE_GAP (cancelled)
- ``early_invoice_rate``: an order billed on milestones is invoiced before the customer's acceptance
  → LIFECYCLE_GAP, resolved when the acceptance arrives
- ``duplicate_rate``, ``hold_rate``, ``dispute_rate``, ``partial_ship_rate``: no drift; the CRM
  update shows a credit hold, a dispute, a partial shipment

Customer commands go to ``customers`` (``app/sim/erp_customers.py``), the ERP's customer master,
which answers each with a customer event.

Pure: no Kafka, no registry, no clock (``now`` is passed in, epoch seconds). AGGREGATE_PARITY
alerts follow from rejections and ignored orders once the service's parity window closes.
"""

from __future__ import annotations

import datetime as dt
import heapq
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from app.sim import erp as build
from app.sim.erp_customers import CustomerBook, CustomerSummary

CENT = Decimal("0.01")
TAX_RATE = Decimal("0.19")
CREATE, AMEND, CANCEL = "CreateSalesOrder", "AmendSalesOrder", "CancelSalesOrder"

FAULT_ALERTS = {
    "ignored": "MISSING_EVENT",
    "dropped": "MISSING_EVENT or LIFECYCLE_GAP",
    "amount_drift": "AMOUNT_MISMATCH",
    "invoice_drift": "AMOUNT_MISMATCH",
    "line_drift": "LINE_MISMATCH",
    "out_of_order": "LIFECYCLE_GAP (resolves)",
    "overpaid": "LIFECYCLE_GAP",
    "phantom": "LIFECYCLE_GAP",
    "shipped_after_cancel": "LIFECYCLE_GAP",
    "early_invoice": "LIFECYCLE_GAP (resolves)",
    "rejected": "exception ERP_REJECTED",
}


def _help(default: Any, text: str) -> Any:
    return field(default=default, metadata={"help": text})


@dataclass(frozen=True)
class ErpConfig:
    """How the simulated ERP behaves: delays in seconds, rates as shares (0..1). Every field is a CLI flag."""

    accept_delay: float = _help(1.0, "seconds from a create to OrderAccepted / OrderRejected")
    ship_delay: float = _help(2.0, "seconds from acceptance to shipment")
    invoice_delay: float = _help(2.0, "seconds from shipment to invoice")
    pay_delay: float = _help(2.0, "seconds from invoice to payment")
    activate_delay: float = _help(1.0, "milestone billing: seconds from shipment to service activation")
    acceptance_delay: float = _help(1.0, "milestone billing: seconds from activation to the customer's acceptance")
    jitter: float = _help(0.3, "each delay varies by up to this share, either way")
    reject_rate: float = _help(0.03, "orders rejected (OrderRejected)")
    retryable_share: float = _help(0.5, "rejections marked retryable (the service re-sends the create)")
    ignore_rate: float = _help(0.0, "orders never answered, re-sends included (missing acceptance)")
    drop_rate: float = _help(0.0, "each event lost on its way (missing event)")
    amount_drift_rate: float = _help(0.02, "orders accepted at another amount (amount mismatch)")
    invoice_drift_rate: float = _help(0.02, "orders invoiced at another amount (amount mismatch)")
    line_drift_rate: float = _help(0.02, "orders with a line shipped in another quantity (line mismatch)")
    drift_share: float = _help(0.05, "how far a drifted amount is off (share of the amount, at least 1.00)")
    out_of_order_rate: float = _help(0.02, "orders with two adjacent events delivered swapped (lifecycle gap)")
    overpay_rate: float = _help(0.0, "orders paid more than invoiced (lifecycle gap)")
    phantom_rate: float = _help(0.0, "per create: an OrderAccepted for an order nobody commanded (lifecycle gap)")
    ship_after_cancel_rate: float = _help(0.0, "cancelled orders that still ship and invoice (lifecycle gap)")
    early_invoice_rate: float = _help(0.0, "milestone-billed orders invoiced before the acceptance (lifecycle gap)")
    duplicate_rate: float = _help(0.02, "each event delivered twice (same event id)")
    partial_ship_rate: float = _help(0.1, "orders of several lines shipped in two shipments")
    hold_rate: float = _help(0.02, "orders put on credit hold after acceptance, released before shipment")
    dispute_rate: float = _help(0.02, "invoices disputed by the customer")
    customer_delay: float = _help(1.0, "seconds from a customer command to its customer event")
    customer_hold_rate: float = _help(0.0, "new customers created on credit hold")
    customer_drop_rate: float = _help(0.0, "customer events lost on their way (the account's deals wait for a link)")

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if name.endswith(("_rate", "_share")) and not 0 <= value <= 1:
                raise ValueError(f"{name} must be a share between 0 and 1")
            if value < 0:
                raise ValueError(f"{name} must not be negative")

    @classmethod
    def clean(cls, **overrides: Any) -> ErpConfig:
        """An ERP that does everything right (every fault rate 0), with ``overrides``."""
        rates = {n: 0.0 for n in cls.__dataclass_fields__ if n.endswith("_rate") and n != "partial_ship_rate"}
        return cls(**{**rates, **overrides})


@dataclass(frozen=True, slots=True)
class Line:
    line_id: str
    sku: str
    quantity: Decimal
    net_amount: Decimal


@dataclass(frozen=True, slots=True)
class Command:
    """The fields of a sales-order command the ERP acts on."""

    command_id: str
    kind: str  # CREATE, AMEND or CANCEL
    opportunity_id: str
    amount: Decimal | None = None
    currency: str | None = None
    lines: tuple[Line, ...] = ()
    reason: str | None = None
    billing_schedule: str | None = None

    @classmethod
    def parse(cls, value: dict[str, Any]) -> Command:
        command = value["command"]
        if isinstance(command, tuple):  # fastavro's union notation
            name, body = command
        else:  # the service's JSON-mode output
            name, body = command["-type"], {k: v for k, v in command.items() if k != "-type"}
        kind = name.rsplit(".", 1)[-1]
        if kind not in (CREATE, AMEND, CANCEL):
            raise ValueError(f"not a sales-order command: {name}")
        lines = tuple(
            Line(ln["line_id"], ln["sku"], Decimal(str(ln["quantity"])), Decimal(str(ln["net_amount"])))
            for ln in body.get("lines") or ()
        )
        amount = body.get("amount")
        return cls(
            value["envelope"]["command_id"],
            kind,
            body["opportunity_id"],
            None if amount is None else Decimal(str(amount)),
            body.get("currency"),
            lines,
            None if body.get("reason") is None else str(body["reason"]),
            None if body.get("billing_schedule") is None else str(body["billing_schedule"]),
        )


@dataclass(slots=True)
class Order:
    command_id: str
    opportunity_id: str
    amount: Decimal
    currency: str
    lines: tuple[Line, ...]
    faults: frozenset[str]
    billing_schedule: str | None = None
    status: str = "new"  # accepted, rejected, ignored, cancelled
    order_number: str | None = None
    version: int = 0  # bumped by an amend or cancel: what was planned before is withdrawn
    cancelled_version: int | None = None  # the version a cancel withdrew
    attempts: int = 0
    retryable: bool = False
    acceptance: dict[str, Any] | None = None  # the last OrderAccepted (or OrderRejected) sent
    happened: dict[str, float] = field(default_factory=dict)  # step -> when it (is to) happen


@dataclass(frozen=True, slots=True)
class Delivery:
    """An event the ERP will publish ``delay`` seconds after the command, at ``at`` (epoch s)."""

    at: float
    delay: float
    event: dict[str, Any]  # an ErpOrderEvent record (Avro-ready: Decimals, datetimes, tuple union)
    command_id: str | None
    version: int
    tag: str  # accepted, shipped, ..., reack

    @property
    def kind(self) -> str:
        return build.kind_of(self.event)


@dataclass
class ErpSummary:
    seed: int
    config: ErpConfig
    commands: Counter = field(default_factory=Counter)  # by kind
    resent: Counter = field(default_factory=Counter)  # a command id seen before, by kind
    orders: int = 0
    outcomes: Counter = field(default_factory=Counter)  # accepted, rejected, ignored
    faults: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)  # by event kind
    scheduled: Counter = field(default_factory=Counter)  # by event kind
    delivered: Counter = field(default_factory=Counter)  # by event kind
    withdrawn: int = 0
    cancelled: int = 0
    amended: int = 0
    unknown_order: Counter = field(default_factory=Counter)  # amend/cancel for no live order
    undecodable: int = 0
    customers: CustomerSummary = field(default_factory=CustomerSummary)

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "config": asdict(self.config),
            "commands": dict(self.commands),
            "resent_commands": dict(self.resent),
            "orders": self.orders,
            "outcomes": dict(self.outcomes),
            "faults": dict(sorted(self.faults.items())),
            "fault_alerts": {k: FAULT_ALERTS[k] for k in sorted(self.faults) if k in FAULT_ALERTS},
            "dropped": dict(self.dropped),
            "events_scheduled": dict(self.scheduled),
            "events_delivered": dict(self.delivered),
            "events_withdrawn": self.withdrawn,
            "cancelled": self.cancelled,
            "amended": self.amended,
            "amend_or_cancel_without_order": dict(self.unknown_order),
            "undecodable_commands": self.undecodable,
            "customers": self.customers.to_json(),
        }

    def render(self) -> str:
        def pairs(counts: Counter | dict) -> str:
            return "  ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"

        return (
            f"commands received  {sum(self.commands.values())}  {pairs(self.commands)}"
            f"{f'  (undecodable {self.undecodable})' if self.undecodable else ''}\n"
            f"re-sent (upserted) {pairs(self.resent)}\n"
            f"orders             {self.orders}  {pairs(self.outcomes)}  cancelled {self.cancelled}  "
            f"amended {self.amended}\n"
            f"faults             {pairs(self.faults)}\n"
            f"events delivered   {sum(self.delivered.values())}  {pairs(self.delivered)}\n"
            f"events dropped     {pairs(self.dropped)}   withdrawn (cancel/amend) {self.withdrawn}\n"
            f"customer commands  {pairs(self.customers.commands)}\n"
            f"customer events    {pairs(self.customers.events)}  dropped {self.customers.dropped}  "
            f"duplicated {self.customers.duplicated}\n"
        )


def _at(t: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, dt.UTC)


class ErpSystem:
    """The simulated ERP's order book (by command id) and its delivery schedule."""

    def __init__(self, seed: int = 1, config: ErpConfig | None = None, system: str = "erp-sim") -> None:
        self.config = config or ErpConfig()
        self.rng = random.Random(seed)
        self.system = system
        self.summary = ErpSummary(seed, self.config)
        self.orders: dict[str, Order] = {}  # command id -> order
        self.live: dict[str, str] = {}  # opportunity id -> command id of its latest order
        self.seen: set[str] = set()  # amend/cancel command ids already applied
        self._numbers = 0
        self._phantoms = 0
        self._queue: list[tuple[float, int, Delivery]] = []
        self._tie = 0
        self.customers = CustomerBook(self.rng, self.config, system, self.summary.customers)

    # --- commands in ---------------------------------------------------------------------
    def on_command(self, value: dict[str, Any], now: float) -> list[Delivery]:
        """Apply one command; the events it schedules (also queued for ``due``)."""
        cmd = Command.parse(value)
        self.summary.commands[cmd.kind] += 1
        handler = {CREATE: self._create, AMEND: self._amend, CANCEL: self._cancel}[cmd.kind]
        planned = handler(cmd, now)
        for d in planned:
            self._tie += 1
            heapq.heappush(self._queue, (d.at, self._tie, d))
            self.summary.scheduled[d.kind] += 1
        return planned

    def due(self, now: float) -> list[dict[str, Any]]:
        """The events to publish by ``now``, in delivery order (withdrawn ones left out)."""
        out = []
        while self._queue and self._queue[0][0] <= now:
            _, _, d = heapq.heappop(self._queue)
            if self._deliverable(d):
                self.summary.delivered[d.kind] += 1
                out.append(d.event)
            else:
                self.summary.withdrawn += 1
        return out

    def pending(self) -> int:
        return len(self._queue)

    def next_due(self) -> float | None:
        return self._queue[0][0] if self._queue else None

    def _deliverable(self, d: Delivery) -> bool:
        order = self.orders.get(d.command_id) if d.command_id else None
        if order is None or d.version == order.version:
            return True
        if order.status == "cancelled" and "ship_after_cancel" in order.faults and d.version == order.cancelled_version:
            if d.kind in ("OrderShipped", "OrderInvoiced"):
                self.summary.faults["shipped_after_cancel"] += 1
            return True
        return False

    def _create(self, cmd: Command, now: float) -> list[Delivery]:
        order = self.orders.get(cmd.command_id)
        if order is not None:
            self.summary.resent[cmd.kind] += 1
            return self._reacknowledge(order, now)
        order = Order(cmd.command_id, cmd.opportunity_id, cmd.amount or Decimal(0), cmd.currency or "EUR", cmd.lines,
                      self._roll_faults(len(cmd.lines)), cmd.billing_schedule)  # fmt: skip
        self.orders[cmd.command_id] = order
        self.live[cmd.opportunity_id] = cmd.command_id
        self.summary.orders += 1
        out = self._process(order, now)
        if self.rng.random() < self.config.phantom_rate:
            out.append(self._phantom(now))
        return out

    def _roll_faults(self, lines: int) -> frozenset[str]:
        c, r = self.config, self.rng.random
        rolls = {
            "ignore": c.ignore_rate,
            "amount_drift": c.amount_drift_rate,
            "invoice_drift": c.invoice_drift_rate,
            "line_drift": c.line_drift_rate if lines else 0.0,
            "out_of_order": c.out_of_order_rate,
            "overpay": c.overpay_rate,
            "ship_after_cancel": c.ship_after_cancel_rate,
            "partial_ship": c.partial_ship_rate if lines > 1 else 0.0,
            "hold": c.hold_rate,
            "dispute": c.dispute_rate,
        }
        faults = {name for name, rate in rolls.items() if r() < rate}
        if c.early_invoice_rate and r() < c.early_invoice_rate:  # rolled only when asked for: seeds stay as they were
            faults.add("early_invoice")
        return frozenset(faults)

    def _process(self, order: Order, now: float) -> list[Delivery]:
        """Decide a new (or retried) order: ignore it, reject it, or accept it and plan its lifecycle."""
        order.attempts += 1
        if "ignore" in order.faults:
            order.status = "ignored"
            self.summary.outcomes["ignored"] += 1
            self.summary.faults["ignored"] += 1
            return []
        if self.rng.random() < self.config.reject_rate:
            order.status = "rejected"
            order.retryable = self.rng.random() < self.config.retryable_share
            self.summary.outcomes["rejected"] += 1
            self.summary.faults["rejected"] += 1
            code, text = (
                ("ERP_LOCKED", "the customer record is locked by another transaction")
                if order.retryable
                else ("CREDIT_LIMIT", "credit limit exceeded")
            )
            event = build.rejected(
                order.opportunity_id, code, text, order.retryable, command_id=order.command_id,
                event_id=f"{order.command_id}:rejected:{order.attempts}", at=_at(now + self._delay("accept")),
            )  # fmt: skip
            order.acceptance = event
            return [self._delivery(now, now + self._delay("accept"), event, order, "rejected")]
        self._numbers += 1
        order.status = "accepted"
        order.order_number = order.order_number or f"SO-{self._numbers:06d}"
        self.summary.outcomes["accepted"] += 1
        return self._plan(order, now, first=True)

    def _reacknowledge(self, order: Order, now: float) -> list[Delivery]:
        """A create seen before: answer as before (same event id), or retry after a retryable rejection."""
        if order.status == "rejected" and order.retryable:
            return self._process(order, now)
        if order.status in ("ignored", "cancelled") or order.acceptance is None:
            return []
        return [self._delivery(now, now + self._delay("accept"), order.acceptance, order, "reack")]

    def _amend(self, cmd: Command, now: float) -> list[Delivery]:
        if cmd.command_id in self.seen:
            self.summary.resent[cmd.kind] += 1
            return []
        self.seen.add(cmd.command_id)
        order = self._live(cmd)
        if order is None:
            return []
        self.summary.amended += 1
        order.amount = cmd.amount if cmd.amount is not None else order.amount
        order.currency = cmd.currency or order.currency
        order.lines = cmd.lines or order.lines
        order.version += 1
        return self._plan(order, now, first=False)

    def _cancel(self, cmd: Command, now: float) -> list[Delivery]:
        if cmd.command_id in self.seen:
            self.summary.resent[cmd.kind] += 1
            return []
        self.seen.add(cmd.command_id)
        order = self._live(cmd)
        if order is None:
            return []
        order.status = "cancelled"
        order.cancelled_version = order.version
        order.version += 1
        self.summary.cancelled += 1
        return []

    def _live(self, cmd: Command) -> Order | None:
        order = self.orders.get(self.live.get(cmd.opportunity_id, ""))
        if order is None or order.status != "accepted":
            self.summary.unknown_order[cmd.kind] += 1
            return None
        return order

    # --- the lifecycle plan ---------------------------------------------------------
    def _delay(self, step: str) -> float:
        base = getattr(self.config, f"{step}_delay")
        return max(0.0, base * (1 + self.rng.uniform(-self.config.jitter, self.config.jitter)))

    def _off(self, amount: Decimal) -> Decimal:
        delta = max(Decimal("1.00"), (amount * Decimal(str(self.config.drift_share))).quantize(CENT))
        return amount + delta if self.rng.random() < 0.5 or amount <= delta else amount - delta

    def _plan(self, order: Order, now: float, first: bool) -> list[Delivery]:
        """OrderAccepted and the steps not yet happened, from ``now``; faults applied as rolled."""
        f, opp, cur = order.faults, order.opportunity_id, order.currency
        ids = {"command_id": order.command_id, "order_number": order.order_number}
        tag = f"{order.order_number}:v{order.version}"
        events: list[tuple[float, str, dict[str, Any]]] = []  # (when it happens, step, record)
        t = now + self._delay("accept")
        accepted = order.amount
        if "amount_drift" in f:
            accepted = self._off(order.amount)
            self.summary.faults["amount_drift"] += 1
        acc = build.accepted(opp, accepted.quantize(CENT), cur, order.order_number, order.command_id,
                             event_id=f"{tag}:accepted", at=_at(t))  # fmt: skip
        order.acceptance = acc
        events.append((t, "accepted", acc))
        if first and "hold" in f:
            events.append((t + 0.01, "hold", build.credit_hold(opp, "overdue invoices", event_id=f"{tag}:hold",
                                                               at=_at(t + 0.01), **ids)))  # fmt: skip
            events.append((t + 0.02, "released", build.hold_released(opp, event_id=f"{tag}:released",
                                                                     at=_at(t + 0.02), **ids)))  # fmt: skip
        happened = {k: v for k, v in order.happened.items() if v <= now}
        order.happened = {**happened, "accepted": t}
        if "shipped" not in happened and order.lines:
            t += self._delay("ship")
            lines = [(ln.line_id, ln.sku, ln.quantity) for ln in order.lines]
            if "line_drift" in f:
                line_id, sku, qty = lines[-1]
                lines[-1] = (line_id, sku, qty + 1 if qty <= 1 or self.rng.random() < 0.5 else qty - 1)
                self.summary.faults["line_drift"] += 1
            if "partial_ship" in f and len(lines) > 1:
                half = len(lines) // 2
                events.append((t, "shipped", build.shipped(opp, f"{tag}:SH1", lines[:half], False,
                                                           event_id=f"{tag}:shipped:1", at=_at(t), **ids)))  # fmt: skip
                t += self._delay("ship") / 2
                lines = lines[half:]
            events.append((t, "shipped", build.shipped(opp, f"{tag}:SH2", lines, True, event_id=f"{tag}:shipped:2",
                                                       at=_at(t), **ids)))  # fmt: skip
            order.happened["shipped"] = t
        accepted_at = None  # when the customer accepts a milestone-billed order (None: not to be sent now)
        if order.billing_schedule == "MILESTONE":
            if "activated" not in happened:
                t += self._delay("activate")
                activated = build.milestone(opp, "SERVICE_ACTIVATED", f"ACT-{order.order_number}",
                                            event_id=f"{tag}:activated", at=_at(t), **ids)  # fmt: skip
                events.append((t, "activated", activated))
                order.happened["activated"] = t
            if "customer-accepted" not in happened:
                accepted_at = t + self._delay("acceptance")
        if "invoiced" not in happened:
            early = accepted_at is not None and "early_invoice" in f
            t = accepted_at if accepted_at is not None and not early else t
            t += self._delay("invoice")
            invoiced = accepted.quantize(CENT)
            if "invoice_drift" in f:
                invoiced = self._off(invoiced)
                self.summary.faults["invoice_drift"] += 1
            invoice = f"INV-{order.order_number}-{order.version}"
            tax = (invoiced * TAX_RATE).quantize(CENT)
            events.append((t, "invoiced", build.invoiced(opp, invoice, invoiced, cur, tax=tax,
                                                         event_id=f"{tag}:invoiced", at=_at(t), **ids)))  # fmt: skip
            order.happened["invoiced"] = t
            if early:
                accepted_at = t + 0.5
                self.summary.faults["early_invoice"] += 1
            if "dispute" in f:
                part = (invoiced / 10).quantize(CENT)
                events.append((t + 0.01, "disputed", build.disputed(opp, invoice, part, cur, "damaged goods",
                                                                    event_id=f"{tag}:disputed", at=_at(t + 0.01),
                                                                    **ids)))  # fmt: skip
            t += self._delay("pay")
            paid = invoiced
            if "overpay" in f:
                paid = invoiced + max(Decimal("1.00"), (invoiced / 20).quantize(CENT))
                self.summary.faults["overpaid"] += 1
            events.append((t, "paid", build.paid(opp, f"PAY-{order.order_number}-{order.version}", invoice, paid,
                                                 cur, event_id=f"{tag}:paid", at=_at(t), **ids)))  # fmt: skip
            order.happened["paid"] = t
        if accepted_at is not None:
            sign_off = build.milestone(opp, "CUSTOMER_ACCEPTED", f"ACC-{order.order_number}",
                                       event_id=f"{tag}:customer-accepted", at=_at(accepted_at), **ids)  # fmt: skip
            events.append((accepted_at, "customer-accepted", sign_off))
            order.happened["customer-accepted"] = accepted_at
        return self._deliveries(order, now, events, first)

    def _deliveries(self, order: Order, now: float, events: list, first: bool) -> list[Delivery]:
        times = [when for when, _, _ in events]
        steps = [step for _, step, _ in events]
        pairs = []  # swaps that open a lifecycle gap: shipped before accepted, paid before invoiced
        if "accepted" in steps and "shipped" in steps:
            pairs.append((steps.index("accepted"), steps.index("shipped")))
        if "invoiced" in steps and "paid" in steps:
            pairs.append((steps.index("invoiced"), steps.index("paid")))
        if first and "out_of_order" in order.faults and pairs:
            a, b = self.rng.choice(pairs)
            times[a], times[b] = times[b] + 0.5, times[b]  # the earlier step arrives half a second after the later
            self.summary.faults["out_of_order"] += 1
        out = []
        for (_, step, record), at in zip(events, times, strict=True):
            if self.rng.random() < self.config.drop_rate:
                self.summary.dropped[build.kind_of(record)] += 1
                self.summary.faults["dropped"] += 1
                continue
            out.append(self._delivery(now, at, record, order, step))
            if self.rng.random() < self.config.duplicate_rate:
                out.append(self._delivery(now, at + 0.05, record, order, f"{step}:duplicate"))
        return out

    def _delivery(self, now: float, at: float, event: dict[str, Any], order: Order, tag: str) -> Delivery:
        return Delivery(at, at - now, event, order.command_id, order.version, tag)

    def _phantom(self, now: float) -> Delivery:
        """An acceptance for an order nobody commanded (another integration, a manual entry)."""
        self._phantoms += 1
        n = self._phantoms
        at = now + self._delay("accept")
        event = build.accepted(f"opp-phantom-{n}", Decimal("999.00"), "EUR", f"SO-P{n:05d}",
                               event_id=f"phantom-{n}:accepted", at=_at(at))  # fmt: skip
        self.summary.faults["phantom"] += 1
        return Delivery(at, at - now, event, None, 0, "phantom")
