"""A seeded CRM that sells: Debezium CDC for whole deals, with the faults a real feed has.

``CrmSimulator(seed, mix, count).events()`` yields ``Planned`` messages in delivery order: first a
snapshot (op ``r``) of the reference data (accounts, contacts, products, price book entries), then
interleaved deals. A deal is an opportunity with line items moving through the stages
(Prospecting → Qualification → Proposal → Negotiation) to Closed Won or Closed Lost; some are edited
after the close, some reopened (then won again or lost), some lost deals deleted (delete, then the
tombstone), some closed won but incomplete (no line items, an account without an ERP customer
number, a product without an ERP item code). Amounts are decimals in EUR, USD, GBP or CHF.

Faults, each a share of ``CrmMix``: a message sent again (``duplicate``), two adjacent changes of a
deal delivered in swapped order (``reordered``), snapshot re-read bursts, and malformed copies of
messages (truncated Avro, wrong magic byte, unknown schema id: see ``wire_value``).

Everything is a pure function of the seed and the mix: no Kafka, no registry, no clock. The
``summary`` records what was sent and, per finished deal, what the service should make of it
(create / cancel / amend commands, whether an order should be live at the end), so a run's outputs
can be checked against its inputs.
"""

from __future__ import annotations

import io
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum
from functools import cache
from typing import Any

import fastavro

from app.contracts import default_index
from app.serde import wire
from app.sim import debezium as dbz

OPEN_STAGES = ("Prospecting", "Qualification", "Proposal/Price Quote", "Negotiation/Review")
WON, LOST = "Closed Won", "Closed Lost"
FX = {"EUR": Decimal("1"), "USD": Decimal("1.08"), "GBP": Decimal("0.86"), "CHF": Decimal("0.95")}
CENT = Decimal("0.01")
REFERENCE_TABLES = ("account", "contact", "product", "pricebook_entry")
UNKNOWN_SCHEMA_BASE = 0x7FFF_0000  # far above any id a registry hands out
FIRST_CLOSE = date(2026, 12, 1)


class Kind(StrEnum):
    """Why a message is on the wire."""

    SNAPSHOT = "snapshot"  # op r: the initial snapshot and later re-read bursts
    CHANGE = "change"  # op c or u
    DELETE = "delete"  # op d
    TOMBSTONE = "tombstone"  # the null value Debezium writes after a delete
    DUPLICATE = "duplicate"  # a message sent again, byte for byte
    MALFORMED = "malformed"  # a copy of a message damaged on the wire


class Defect(StrEnum):
    TRUNCATED = "truncated_avro"  # the Avro body cut short (the header and schema id are valid)
    BAD_MAGIC = "wrong_magic_byte"  # first byte not 0
    UNKNOWN_SCHEMA = "unknown_schema_id"  # a schema id the registry never issued


class Scenario(StrEnum):
    WON = "won"
    LOST = "lost"
    REOPENED_WON = "reopened_won"  # closed won, reopened, closed won again
    REOPENED_LOST = "reopened_lost"  # closed won, reopened, then lost
    INCOMPLETE = "incomplete"  # closed won but it cannot become an order


class Incomplete(StrEnum):
    NO_LINES = "no_lines"
    UNLINKED_ACCOUNT = "unlinked_account"
    UNMAPPED_PRODUCT = "unmapped_product"


def _help(default: Any, text: str) -> Any:
    return field(default=default, metadata={"help": text})


@dataclass(frozen=True)
class CrmMix:
    """What the simulated CRM does, as shares (0..1) and sizes. Every field is a CLI flag."""

    accounts: int = _help(40, "accounts linked to an ERP customer")
    unlinked_accounts: int = _help(3, "accounts without an ERP customer number (used by incomplete deals)")
    products: int = _help(15, "products mapped to an ERP item (one more is unmapped)")
    contacts_per_account: int = _help(2, "contacts per account")
    concurrency: int = _help(8, "deals in flight at once (their changes interleave)")
    lost: float = _help(0.2, "share of deals lost (from an open stage)")
    reopened: float = _help(0.1, "share of deals closed won, reopened, then won again (2 in 3) or lost")
    incomplete: float = _help(0.08, "share of deals closed won but incomplete (no lines, unlinked account, ...)")
    edited: float = _help(0.25, "share of won deals edited after the close (half change a line: an amend)")
    deleted: float = _help(0.3, "share of lost deals deleted afterwards (delete + tombstone per row)")
    line_churn: float = _help(0.15, "share of deals where a line item is added and deleted before the close")
    duplicates: float = _help(0.03, "share of messages sent again (same key and value)")
    reorder: float = _help(0.1, "share of deals with two adjacent changes delivered in swapped order")
    malformed: float = _help(0.01, "share of messages followed by a damaged copy (truncated, bad magic, bad id)")
    churn: float = _help(0.05, "chance after each deal step of a contact or account change")
    milestone_billing: float = _help(0.0, "share of deals billed on milestones (invoiced after the customer accepts)")
    ended_terms: float = _help(0.0, "share of won deals on a one-month contract that ended ten days ago (renewal due)")
    renewed: float = _help(0.5, "share of those whose renewal opportunity the CRM then creates")
    rest: int = _help(50, "messages a deal waits once its lines are in and after a close (lets the close settle)")
    snapshot_every: int = _help(250, "messages between snapshot (op r) re-read bursts; 0: initial snapshot only")
    snapshot_size: int = _help(20, "reference rows per re-read burst")

    def __post_init__(self) -> None:
        shares = ("lost", "reopened", "incomplete", "edited", "deleted", "line_churn", "duplicates", "reorder",
                  "malformed", "churn", "milestone_billing", "ended_terms", "renewed")  # fmt: skip
        for name in shares:
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be a share between 0 and 1")
        if self.lost + self.reopened + self.incomplete > 1:
            raise ValueError("lost + reopened + incomplete must not exceed 1")
        if self.accounts < 1 or self.products < 1 or self.concurrency < 1:
            raise ValueError("accounts, products and concurrency must be at least 1")


@dataclass(frozen=True, slots=True)
class Planned:
    """One message to send: ``value`` is the envelope (None: a tombstone), ``key`` the row id."""

    seq: int
    table: str
    key: str
    value: dict[str, Any] | None
    kind: Kind
    deal: str | None = None
    reordered: bool = False  # committed before the message sent just ahead of it
    defect: Defect | None = None
    cut: float = 0.5  # TRUNCATED: share of the Avro body kept (less if that much still decodes)
    bad_id: int = 0  # UNKNOWN_SCHEMA: the schema id written; BAD_MAGIC: the magic byte

    @property
    def topic(self) -> str:
        """The catalog topic (without a prefix)."""
        return f"crm.public.{self.table}"


@dataclass(slots=True)
class _Change:
    table: str
    op: str  # c, u, d or "tombstone"
    row_id: str
    before: dbz.Row | None
    after: dbz.Row | None
    glue: bool = False  # emitted together with the next change (no other deal in between)
    swap: bool = False  # delivered after the next change
    envelope: dict[str, Any] | None = None  # built when the change is committed (its LSN)
    rest: bool = False  # the deal waits ``CrmMix.rest`` messages after this change


@dataclass(slots=True)
class DealPlan:
    """One deal and what the service should make of it (in commit order)."""

    id: str
    scenario: Scenario
    account: str
    currency: str
    amount: Decimal
    lines: int
    final_stage: str
    complete: bool
    incomplete_reason: Incomplete | None = None
    creates: int = 0  # distinct create command ids expected (one per close into Closed Won)
    cancels: int = 0
    amends: int = 0
    edit: str | None = None  # "amend" or "cosmetic"
    deleted: bool = False
    line_churn: bool = False
    reordered: bool = False
    term_ended: bool = False  # a one-month contract that ended before the run: its renewal is due
    renewed: bool = False  # the CRM created its renewal opportunity (<id>-rn)
    changes: list[_Change] = field(default_factory=list, repr=False)
    next: int = field(default=0, repr=False)
    resume_at: int = field(default=0, repr=False)  # message seq before which the deal is resting

    @property
    def expects_order(self) -> bool:
        """A live order at the end: closed won, complete, not deleted."""
        return self.complete and self.final_stage == WON and not self.deleted

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "scenario": str(self.scenario),
            "account": self.account,
            "currency": self.currency,
            "amount": str(self.amount),
            "lines": self.lines,
            "final_stage": self.final_stage,
            "complete": self.complete,
            "incomplete_reason": self.incomplete_reason and str(self.incomplete_reason),
            "expects_order": self.expects_order,
            "creates": self.creates,
            "cancels": self.cancels,
            "amends": self.amends,
            "edit": self.edit,
            "deleted": self.deleted,
            "line_churn": self.line_churn,
            "reordered": self.reordered,
            "term_ended": self.term_ended,
            "renewed": self.renewed,
        }


@dataclass
class CrmSummary:
    """What was sent, and what the service should make of it."""

    seed: int
    mix: CrmMix
    messages: Counter = field(default_factory=Counter)  # by Kind
    tables: Counter = field(default_factory=Counter)
    ops: Counter = field(default_factory=Counter)  # c u d r tombstone
    defects: Counter = field(default_factory=Counter)
    reordered_pairs: int = 0
    started: int = 0
    deals: list[DealPlan] = field(default_factory=list)  # finished deals

    def count(self, **where: Any) -> int:
        return sum(all(getattr(d, k) == v for k, v in where.items()) for d in self.deals)

    def totals(self) -> dict[str, Any]:
        deals = self.deals
        won_amount: Counter = Counter()
        for d in deals:
            if d.expects_order:
                won_amount[d.currency] += d.amount
        return {
            "messages": sum(self.messages.values()),
            "by_kind": dict(sorted(self.messages.items())),
            "by_table": dict(sorted(self.tables.items())),
            "by_op": dict(sorted(self.ops.items())),
            "malformed_by_defect": dict(sorted(self.defects.items())),
            "reordered_pairs": self.reordered_pairs,
            "deals": {
                "started": self.started,
                "finished": len(deals),
                "closed_won": sum(d.final_stage == WON for d in deals),
                "lost": sum(d.final_stage == LOST for d in deals),
                "reopened": sum(d.scenario in (Scenario.REOPENED_WON, Scenario.REOPENED_LOST) for d in deals),
                "reopened_won_again": self.count(scenario=Scenario.REOPENED_WON),
                "incomplete": dict(Counter(str(d.incomplete_reason) for d in deals if d.incomplete_reason)),
                "edited_after_close": dict(Counter(d.edit for d in deals if d.edit)),
                "deleted": self.count(deleted=True),
                "line_churn": self.count(line_churn=True),
                "by_currency": dict(sorted(Counter(d.currency for d in deals).items())),
            },
            "expected": {
                "orders": sum(d.expects_order for d in deals),
                "create_command_ids": sum(d.creates for d in deals),
                "cancels": sum(d.cancels for d in deals),
                "amends": sum(d.amends for d in deals),
                "incomplete_deals": sum(d.incomplete_reason is not None for d in deals),
                # an ended term is asked to renew once it had an order; RENEWAL_MISSING stays open unless renewed
                "renewals_due": sum(d.term_ended and d.creates > 0 for d in deals),
                "renewals_missing": sum(d.term_ended and d.expects_order and not d.renewed for d in deals),
                "order_amount": {c: str(a) for c, a in sorted(won_amount.items())},
            },
        }

    def to_json(self) -> dict[str, Any]:
        per_deal = [d.to_json() for d in self.deals]
        return {"seed": self.seed, "mix": asdict(self.mix), **self.totals(), "per_deal": per_deal}

    def render(self) -> str:
        t = self.totals()
        d, e = t["deals"], t["expected"]

        def pairs(counts: dict[str, Any]) -> str:
            return "  ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"

        lines = [
            f"messages sent      {t['messages']}  " + "  ".join(f"{k} {v}" for k, v in t["by_kind"].items()),
            "by op              " + "  ".join(f"{k} {v}" for k, v in t["by_op"].items()),
            "malformed          " + ("  ".join(f"{k} {v}" for k, v in t["malformed_by_defect"].items()) or "none"),
            f"reordered pairs    {t['reordered_pairs']}",
            f"deals              {d['finished']} finished of {d['started']} started: {d['closed_won']} closed won, "
            f"{d['lost']} lost, {d['reopened']} reopened ({d['reopened_won_again']} won again), "
            f"{d['deleted']} deleted, {d['line_churn']} with line churn",
            "incomplete         " + pairs(d["incomplete"]),
            "edited after close " + pairs(d["edited_after_close"]),
            "currencies         " + "  ".join(f"{k} {v}" for k, v in d["by_currency"].items()),
            f"expected           {e['orders']} live orders, {e['create_command_ids']} distinct create command ids, "
            f"{e['cancels']} cancels, {e['amends']} amends, {e['incomplete_deals']} deals raising exceptions",
            "order amounts      " + ("  ".join(f"{v} {k}" for k, v in e["order_amount"].items()) or "none"),
        ]
        return "\n".join(lines) + "\n"


class CrmSimulator:
    """A seeded stream of CRM CDC: ``events()`` yields it, ``summary`` accounts for it.

    ``count`` deals are started (None: until ``stop()``); after ``stop()`` no new deal starts and
    the stream ends once the deals in flight are finished.
    """

    def __init__(
        self,
        seed: int = 1,
        mix: CrmMix | None = None,
        count: int | None = 100,
        prefix: str = "opp",
        erp_links: bool = False,
    ) -> None:
        """``erp_links``: an ERP answers the service's customer commands (``simulate erp`` does), so
        a deal on an account without an ERP customer number goes on to an order once the ERP links
        the account; without one it stays incomplete."""
        self.mix = mix or CrmMix()
        self.erp_links = erp_links
        self.count = count
        self.prefix = prefix
        self.rng = random.Random(seed)
        self.lsn = dbz.Lsn(seed=seed)
        self.summary = CrmSummary(seed, self.mix)
        self.rows: dict[tuple[str, str], dbz.Row] = {}  # reference rows as last sent
        self._stopping = False
        self._seq = 0
        self._since_burst = 0
        self._pending: list[list[Any]] = []  # [messages to wait, Planned] duplicates not yet sent
        self._contacts = 0
        self._linked = [f"acc-{i}" for i in range(self.mix.accounts)]
        self._unlinked = [f"acc-u{i}" for i in range(self.mix.unlinked_accounts)]
        self._products = [f"prod-{i}" for i in range(self.mix.products)]
        self._prices: dict[tuple[str, str], Decimal] = {}

    def stop(self) -> None:
        self._stopping = True

    # --- the stream -----------------------------------------------------------------
    def events(self) -> Iterator[Planned]:
        yield from self._initial_snapshot()
        active: list[DealPlan] = []
        while True:
            while len(active) < self.mix.concurrency and not self._stopping and self._more():
                active.append(self._plan(self.summary.started))
                self.summary.started += 1
            if not active:
                break
            awake = [d for d in active if d.resume_at <= self._seq]
            deal = self.rng.choice(awake) if awake else min(active, key=lambda d: d.resume_at)
            rest = False
            for change, reordered in self._run(deal):
                rest = rest or change.rest
                yield from self._send(self._message(change, deal.id, reordered))
            if rest:
                deal.resume_at = self._seq + self.mix.rest
            if deal.next >= len(deal.changes):
                active.remove(deal)
                deal.changes = []  # sent: only the expectations are kept
                self.summary.deals.append(deal)
            if self.rng.random() < self.mix.churn:
                for change in self._churn():
                    yield from self._send(self._message(change, None, False))
            if self.mix.snapshot_every and self._since_burst >= self.mix.snapshot_every:
                self._since_burst = 0
                yield from self._burst(self.mix.snapshot_size)
        for _, original in self._pending:  # duplicates still owed
            yield from self._emit(replace(original, kind=Kind.DUPLICATE, reordered=False))
        self._pending = []

    def _more(self) -> bool:
        return self.count is None or self.summary.started < self.count

    def _send(self, planned: Planned) -> Iterator[Planned]:
        """``planned``, then whatever it brings along: a damaged copy, duplicates that are due."""
        yield from self._emit(planned)
        self._since_burst += 1
        if self.rng.random() < self.mix.malformed and planned.value is not None:
            yield from self._emit(self._malformed(planned))
        if self.rng.random() < self.mix.duplicates:
            self._pending.append([self.rng.randint(0, 3), planned])
        for item in self._pending:
            item[0] -= 1
        due = [original for wait, original in self._pending if wait < 0]
        self._pending = [item for item in self._pending if item[0] >= 0]
        for original in due:
            yield from self._emit(replace(original, kind=Kind.DUPLICATE, reordered=False))

    def _emit(self, planned: Planned) -> Iterator[Planned]:
        self._seq += 1
        out = replace(planned, seq=self._seq)
        s = self.summary
        s.messages[out.kind] += 1
        s.tables[out.table] += 1
        if out.kind is Kind.MALFORMED:
            s.defects[out.defect] += 1
        elif out.value is None:
            s.ops["tombstone"] += 1
        else:
            s.ops[out.value["op"]] += 1
        yield out

    def _malformed(self, planned: Planned) -> Planned:
        defect = self.rng.choice(list(Defect))
        bad_id = {Defect.BAD_MAGIC: self.rng.randint(1, 255), Defect.UNKNOWN_SCHEMA: UNKNOWN_SCHEMA_BASE}.get(defect, 0)
        if defect is Defect.UNKNOWN_SCHEMA:
            bad_id += self.rng.randrange(0xFFFF)
        cut = round(self.rng.uniform(0.2, 0.9), 3)
        return Planned(0, planned.table, planned.key, planned.value, Kind.MALFORMED, planned.deal, False, defect, cut,
                       bad_id)  # fmt: skip

    def _message(self, change: _Change, deal: str | None, reordered: bool) -> Planned:
        if change.op == "tombstone":
            return Planned(0, change.table, change.row_id, None, Kind.TOMBSTONE, deal, reordered)
        kind = Kind.DELETE if change.op == "d" else Kind.CHANGE
        return Planned(0, change.table, change.row_id, change.envelope, kind, deal, reordered)

    # --- reference data -------------------------------------------------------------
    def _reference_rows(self) -> list[tuple[str, dbz.Row]]:
        rows: list[tuple[str, dbz.Row]] = []
        rng = self.rng
        for n, acc in enumerate(self._linked + self._unlinked):
            linked = acc in self._linked
            country = rng.choice(("DE", "AT", "CH", "GB", "US", "FR"))
            row = dbz.account_row(
                acc, f"Customer {n} {rng.choice(('GmbH', 'AG', 'Ltd', 'Inc', 'SARL'))}",
                erp_customer_number=f"C-{10000 + n}" if linked else None,
                payment_terms=rng.choice(("NET30", "NET30", "NET45", "NET60")), country=country,
                billing_street=f"Hauptstraße {n + 1}", billing_city="Berlin", billing_postal_code="10115",
                shipping_street=f"Hauptstraße {n + 1}", shipping_city="Berlin", shipping_postal_code="10115",
            )  # fmt: skip
            rows.append(("account", row))
            for _ in range(self.mix.contacts_per_account):
                rows.append(("contact", self._contact_row(acc)))
        for n, prod in enumerate([*self._products, "prod-unmapped"]):
            unmapped = prod == "prod-unmapped"
            code = "SKU-X" if unmapped else f"SKU-{n}"
            item = None if unmapped else ...  # ...: the default "ERP-<code>"
            rows.append(("product", dbz.product_row(prod, code, f"Product {code}", erp_item_code=item)))
            base = Decimal(rng.choice((49, 99, 120, 250, 480, 990, 1500)))
            for cur, rate in FX.items():
                price = (base * rate).quantize(CENT)
                self._prices[(prod, cur)] = price
                rows.append(("pricebook_entry", dbz.pricebook_row(f"pbe-{prod}-{cur}", prod, cur, price)))
        return rows

    def _contact_row(self, account: str) -> dbz.Row:
        self._contacts += 1
        n = self._contacts
        first = self.rng.choice(("Erika", "Max", "Anna", "Jan", "Lea"))
        last = self.rng.choice(("Muster", "Roth", "Kim"))
        return dbz.contact_row(f"con-{n}", account, last, first, email=f"{first.lower()}.{n}@example.com")

    def _initial_snapshot(self) -> Iterator[Planned]:
        rows = self._reference_rows()
        for table, row in rows:
            self.rows[(table, row["id"])] = row
        yield from self._snapshot(rows)

    def _burst(self, size: int) -> Iterator[Planned]:
        keys = sorted(self.rows)
        chosen = self.rng.sample(keys, min(size, len(keys)))
        yield from self._snapshot([(t, self.rows[(t, i)]) for t, i in chosen])

    def _snapshot(self, rows: list[tuple[str, dbz.Row]]) -> Iterator[Planned]:
        for n, (table, row) in enumerate(rows):
            env = dbz.snapshot_read(table, row, self.lsn, last=n == len(rows) - 1)
            yield from self._send(Planned(0, table, row["id"], env, Kind.SNAPSHOT))

    def _churn(self) -> list[_Change]:
        """A contact added, edited or deleted, or an account edited (its ERP link unchanged)."""
        rng = self.rng
        what = "edit_account"
        if self.mix.contacts_per_account:
            what = rng.choice(("new_contact", "edit_contact", "delete_contact", "edit_account"))
        contacts = sorted(i for t, i in self.rows if t == "contact")
        if what == "new_contact" or (what != "edit_account" and not contacts):
            row = self._contact_row(rng.choice(self._linked))
            return self._ref_change("contact", row)
        if what == "edit_account":
            acc = rng.choice(self._linked + self._unlinked)
            before = self.rows[("account", acc)]
            return self._ref_change("account", {**before, "phone": f"+49 30 {rng.randrange(10**6, 10**7)}"})
        cid = rng.choice(contacts)
        before = self.rows[("contact", cid)]
        if what == "edit_contact":
            return self._ref_change("contact", {**before, "phone": f"+49 170 {rng.randrange(10**6, 10**7)}"})
        del self.rows[("contact", cid)]
        change = _Change("contact", "d", cid, before, None, envelope=dbz.delete("contact", before, self.lsn))
        return [change, _Change("contact", "tombstone", cid, None, None)]

    def _ref_change(self, table: str, row: dbz.Row) -> list[_Change]:
        before = self.rows.get((table, row["id"]))
        self.rows[(table, row["id"])] = row
        env = dbz.update(table, before, row, self.lsn) if before else dbz.create(table, row, self.lsn)
        return [_Change(table, "u" if before else "c", row["id"], before, row, envelope=env)]

    # --- deals --------------------------------------------------------------------------
    def _plan(self, n: int) -> DealPlan:
        rng, mix = self.rng, self.mix
        opp = f"{self.prefix}-{n}"
        roll = rng.random()
        if roll < mix.lost:
            scenario = Scenario.LOST
        elif roll < mix.lost + mix.reopened:
            scenario = Scenario.REOPENED_WON if rng.random() < 2 / 3 else Scenario.REOPENED_LOST
        elif roll < mix.lost + mix.reopened + mix.incomplete:
            scenario = Scenario.INCOMPLETE
        else:
            scenario = Scenario.WON
        reason = rng.choice(list(Incomplete)) if scenario is Scenario.INCOMPLETE else None
        if reason is Incomplete.UNLINKED_ACCOUNT and not self._unlinked:
            reason = Incomplete.NO_LINES
        account = rng.choice(self._unlinked if reason is Incomplete.UNLINKED_ACCOUNT else self._linked)
        currency = rng.choice(sorted(FX))

        lines: list[dbz.Row] = []
        if reason is not Incomplete.NO_LINES:
            for i in range(rng.randint(1, 4)):
                prod = rng.choice(self._products)
                lines.append(self._line(f"{opp}-l{i}", opp, prod, currency))
            if reason is Incomplete.UNMAPPED_PRODUCT:
                lines.append(self._line(f"{opp}-l{len(lines)}", opp, "prod-unmapped", currency))
        amount = sum((ln["total_price"] for ln in lines), Decimal(0)) or Decimal(rng.randint(500, 5000))
        close = FIRST_CLOSE + timedelta(days=n % 90)
        schedule = rng.choice(("Annual", "Annual", "Upfront"))
        if self.mix.milestone_billing and rng.random() < self.mix.milestone_billing:  # rolled only when asked for
            schedule = "Milestone"
        term: dict[str, Any] = {}
        ended = reason is None and bool(self.mix.ended_terms) and rng.random() < self.mix.ended_terms
        if ended:  # a one-month term that ended ten days ago (the close date window allows it)
            close = date.today() - timedelta(days=40)
            term = {"close_date": close, "contract_term_months": 1}

        def header(stage: str, amt: Decimal = amount, **extra: Any) -> dbz.Row:
            probability = {"Prospecting": 10, "Qualification": 20, "Proposal/Price Quote": 50,
                           "Negotiation/Review": 75, WON: 100, LOST: 0}[stage]  # fmt: skip
            values = {"name": f"Deal {n}", "probability": probability, "billing_schedule": schedule, **term, **extra}
            values.setdefault("close_date", close)
            return dbz.opportunity_row(opp, account, stage, amt, currency=currency, **values)

        complete = reason is None or (reason is Incomplete.UNLINKED_ACCOUNT and self.erp_links)
        plan = DealPlan(opp, scenario, account, currency, amount, len(lines), WON, complete, reason)
        plan.term_ended = ended
        ch = plan.changes
        current = {"opp": header("Prospecting")}

        def opp_change(row: dbz.Row) -> None:
            ch.append(_Change("opportunity", "u", opp, current["opp"], row))
            current["opp"] = row

        ch.append(_Change("opportunity", "c", opp, None, current["opp"]))
        stages = [s for s in OPEN_STAGES[1:] if rng.random() < 0.75]
        pending_lines = list(lines)
        for stage in stages:
            opp_change(header(stage))
            if pending_lines and rng.random() < 0.6:
                ch.append(_Change("opportunity_line_item", "c", pending_lines[0]["id"], None, pending_lines.pop(0)))
        for line in pending_lines:
            ch.append(_Change("opportunity_line_item", "c", line["id"], None, line))
        if lines and rng.random() < mix.line_churn:
            plan.line_churn = True
            extra = self._line(f"{opp}-x", opp, rng.choice(self._products), currency)
            ch.append(_Change("opportunity_line_item", "c", extra["id"], None, extra))
            ch.append(_Change("opportunity_line_item", "d", extra["id"], extra, None, glue=True))
            ch.append(_Change("opportunity_line_item", "tombstone", extra["id"], None, None))

        ch[-1].rest = True  # the deal's lines are in: it closes a while later

        def close_as(stage: str) -> None:
            opp_change(header(stage))
            ch[-1].rest = True

        if scenario is Scenario.LOST:
            plan.final_stage = LOST
            close_as(LOST)
            if rng.random() < mix.deleted:
                plan.deleted = True
                for line in lines:
                    ch.append(_Change("opportunity_line_item", "d", line["id"], line, None, glue=True))
                    ch.append(_Change("opportunity_line_item", "tombstone", line["id"], None, None))
                ch.append(_Change("opportunity", "d", opp, current["opp"], None, glue=True))
                ch.append(_Change("opportunity", "tombstone", opp, None, None))
        else:
            close_as(WON)
            plan.creates += plan.complete
            if scenario is Scenario.WON and rng.random() < mix.edited:
                if lines and rng.random() < 0.5:
                    plan.edit = "amend"
                    plan.amends += plan.complete
                    old = lines[0]
                    qty = old["quantity"] + rng.randint(1, 3)
                    new = dbz.line_row(
                        old["id"], opp, old["product_id"], qty, old["unit_price"],
                        list_price=old["list_price"], discount=old["discount"],
                    )  # fmt: skip
                    amount = amount - old["total_price"] + new["total_price"]
                    plan.amount = amount
                    ch.append(_Change("opportunity_line_item", "u", old["id"], old, new, glue=True))
                    opp_change(header(WON, amount))
                else:
                    plan.edit = "cosmetic"  # a field the order does not carry (the deal's name): no command
                    opp_change(header(WON, name=f"Deal {n} (rev. {rng.randint(1, 14)})"))
            if scenario in (Scenario.REOPENED_WON, Scenario.REOPENED_LOST):
                opp_change(header("Negotiation/Review"))
                plan.cancels += plan.complete
                if scenario is Scenario.REOPENED_WON:
                    close_as(WON)
                    plan.creates += plan.complete
                else:
                    plan.final_stage = LOST
                    close_as(LOST)
        if ended and plan.final_stage == WON and rng.random() < mix.renewed:
            plan.renewed = True  # the CRM opens the renewal: the service's RENEWAL_MISSING resolves
            renewal = dbz.opportunity_row(f"{opp}-rn", account, "Prospecting", amount, currency=currency,
                                          close_date=date.today() + timedelta(days=20), renewal_of=opp,
                                          contract_term_months=1, name=f"Deal {n} renewal")  # fmt: skip
            ch.append(_Change("opportunity", "c", renewal["id"], None, renewal))
        if rng.random() < mix.reorder:
            plan.reordered = self._mark_swap(ch)
            self.summary.reordered_pairs += plan.reordered
        return plan

    def _line(self, line_id: str, opp: str, prod: str, currency: str) -> dbz.Row:
        rng = self.rng
        list_price = self._prices[(prod, currency)]
        discount = Decimal(rng.choice((0, 0, 5, 10, 15, 20)))
        unit = (list_price * (1 - discount / 100)).quantize(CENT)
        qty = Decimal(rng.choice((1, 1, 2, 3, 5, 10, 12, 25)))
        return dbz.line_row(line_id, opp, prod, qty, unit, list_price=list_price, discount=discount)

    def _mark_swap(self, changes: list[_Change]) -> bool:
        """Mark one adjacent pair of changes to be delivered swapped; False if no pair may be.

        Glued changes stay together, tombstones right behind their delete. Two changes of the
        opportunity row are swapped only when the one skipped over (the service applies the newer
        and drops the older as stale) does not decide whether the deal was closed won in between;
        a line's update or delete is not moved across a close or reopen. So the expected commands
        hold whatever is swapped.
        """
        won = [False]  # is the opportunity closed won after each change
        state = False
        for c in changes:
            if c.table == "opportunity" and c.op != "tombstone":
                state = c.after is not None and c.after["stage_name"] == WON
            won.append(state)
        candidates = []
        for j in range(len(changes) - 1):
            a, b = changes[j], changes[j + 1]
            if "tombstone" in (a.op, b.op) or a.glue or b.glue:
                continue
            if a.table == b.table == "opportunity":
                if won[j + 1] != won[j] and won[j + 1] != won[j + 2]:
                    continue
            elif "opportunity" in (a.table, b.table):
                line, flips = (b, won[j + 1] != won[j]) if a.table == "opportunity" else (a, won[j + 2] != won[j + 1])
                if flips and line.op != "c":
                    continue
            candidates.append(j)
        if not candidates:
            return False
        j = self.rng.choice(candidates)
        changes[j].glue = changes[j].swap = True
        return True

    def _run(self, deal: DealPlan) -> Iterator[tuple[_Change, bool]]:
        """The deal's next change (and the ones glued to it): envelopes in commit order, delivered swapped
        where marked."""
        run: list[_Change] = []
        while deal.next < len(deal.changes):
            change = deal.changes[deal.next]
            deal.next += 1
            t = change.table
            if change.op == "c":
                change.envelope = dbz.create(t, change.after, self.lsn)
            elif change.op == "u":
                change.envelope = dbz.update(t, change.before, change.after, self.lsn)
            elif change.op == "d":
                change.envelope = dbz.delete(t, change.before, self.lsn)
            run.append(change)
            if not change.glue:
                break
        order = list(range(len(run)))
        ahead = set()  # delivered before a change committed ahead of it
        for i, change in enumerate(run[:-1]):
            if change.swap:
                order[i], order[i + 1] = order[i + 1], order[i]
                ahead.add(i + 1)
        for i in order:
            yield run[i], i in ahead


# --- on the wire ------------------------------------------------------------------------


@cache
def _parsed(contract: str) -> Any:
    return fastavro.parse_schema(default_index().expanded(contract))


def value_contract(table: str) -> str:
    return f"crm.public.{table}.Envelope"


def key_contract(table: str) -> str:
    return f"crm.public.{table}.Key"


def avro_body(value: dict[str, Any], schema: Any) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, value)
    return buf.getvalue()


def decodes(body: bytes, schema: Any) -> bool:
    try:
        fastavro.schemaless_reader(io.BytesIO(body), schema, None)
    except Exception:
        return False
    return True


def wire_key(planned: Planned, schema_id: int) -> bytes:
    """The message key: the Debezium Key record in the Confluent wire format."""
    return wire.header(schema_id) + avro_body(dbz.key(planned.key), _parsed(key_contract(planned.table)))


def wire_value(planned: Planned, schema_id: int, schema: Any | None = None) -> bytes | None:
    """The message value in the Confluent wire format (None for a tombstone), damaged if malformed.

    ``schema_id`` is the registered id of the table's Envelope contract, ``schema`` that contract
    (parsed; default: from ``avro/``). A truncated body is cut to ``planned.cut`` of its length, and
    shorter still until it no longer decodes, so it is malformed for certain.
    """
    if planned.value is None:
        return None
    schema = schema if schema is not None else _parsed(value_contract(planned.table))
    body = avro_body(planned.value, schema)
    match planned.defect:
        case None:
            return wire.header(schema_id) + body
        case Defect.BAD_MAGIC:
            return bytes([planned.bad_id or 1]) + schema_id.to_bytes(4, "big") + body
        case Defect.UNKNOWN_SCHEMA:
            return wire.header(planned.bad_id) + body
        case Defect.TRUNCATED:
            cut = int(len(body) * planned.cut)
            while cut > 0 and decodes(body[:cut], schema):
                cut -= 1
            return wire.header(schema_id) + body[:cut]
    raise ValueError(f"unknown defect {planned.defect!r}")
