"""The engine's keyed runner (app/engine/keyed.py) over each flow's real step, without Kafka.

A crash is a ``Crash`` raised where the fail-point would kill the worker: after the state and
outbox are written (nothing sent), or after the sends (input not committed). ``restart`` keeps
the tables, as the state directory survives ``kill -9``, and forgets everything in memory. The
same crashes with a real ``kill -9`` on the real platform: tests/integration/test_crash_points.py.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from unittest.mock import ANY

import orjson
import pytest

from app.domain.changes import Lineage, Op, Position, RowChange
from app.domain.customer_links import CustomerEvent, CustomerEventKind
from app.domain.exceptions import state as exception_state
from app.domain.exceptions.escalation import load
from app.domain.feedback.lifecycle import ErpKind
from app.domain.orders.references import Account
from app.domain.orders.validation import Policy
from app.domain.parity.aggregate import Thresholds
from app.engine import keyed
from app.engine.failpoints import FailPoints, parse
from app.engine.keyed import Input
from app.engine.routes import route
from app.flows import accounts as account_flow
from app.flows import customer_links as link_flow
from app.flows import deals as deal_flow
from app.flows import ledger as ledger_flow
from app.flows import parity as parity_flow
from app.flows.step import rows
from app.settings import get_settings
from tests.support.deals import NOW, Source, header, line, references
from tests.support.driver import Crash, Driver, inp
from tests.support.erp import OPP, Deal, rejection_exception

POLICY = Policy()
POINTS = ("after_state", "after_send")

REFS = references()


def deal_events():
    src = Source()
    return [
        src.event(OPP, src.change("opportunity_line_item", "l1", line(OPP, "prod-a", "2", "100"))),
        src.event(OPP, src.change("opportunity_line_item", "l2", line(OPP, "prod-b", "1", "50"))),
        src.event(OPP, src.change("opportunity", OPP, header())),
    ]


def feed(driver: Driver, event, refs, now=NOW):
    ctx = deal_flow.Context(refs, POLICY, now)
    return driver.run(
        inp(event.delivery, OPP), lambda: deal_flow.step(driver.tables, OPP.encode(), event, event.delivery, ctx)
    )


def ids(driver: Driver, topic: str, field: str = "command_id") -> list[str]:
    return [v["envelope"][field] if "envelope" in v else v[field] for v in driver.sent(topic)]


# --- deals ------------------------------------------------------------------------------------


@pytest.mark.parametrize("point", POINTS)
def test_a_crash_at_either_point_of_the_closing_step_still_sends_its_create_once_by_id(point):
    refs = references()
    twin, crashed = Driver("deals", deal_flow.TABLES, "deals"), Driver("deals", deal_flow.TABLES, "deals")
    for e in deal_events():
        feed(twin, e, refs)
    *lines, close = deal_events()
    for e in lines:
        feed(crashed, e, refs)
    crashed.wire.crash_at = point
    with pytest.raises(Crash):
        feed(crashed, close, refs)
    crashed.restart()
    assert feed(crashed, close, refs) is None  # a redelivery: the stored outputs, not a new decision

    [create_id] = set(ids(twin, "erp.commands.sales-order"))
    assert set(ids(crashed, "erp.commands.sales-order")) == {create_id}
    assert len(crashed.sent("erp.commands.sales-order")) == (1 if point == "after_state" else 2)
    assert {r.value for r in crashed.wire.sent} == {r.value for r in twin.wire.sent}  # the same bytes
    assert crashed.tables == twin.tables  # the same state as without the crash


def test_a_crash_between_the_outbox_and_the_state_rows_is_replayed_from_the_outbox():
    """The outbox row is written first and holds the step's writes: it is the step's one atomic record."""

    class DiesOnWrite(dict):
        armed = False

        def __setitem__(self, key, value):
            if self.armed and key == OPP.encode():  # the state row, written after the outbox row
                self.armed = False
                raise Crash("between the outbox and the deals row")
            super().__setitem__(key, value)

    refs = references()
    driver = Driver("deals", deal_flow.TABLES, "deals")
    driver.tables["deals"] = deals = DiesOnWrite()
    driver.restart()
    *lines, close = deal_events()
    for e in lines:
        feed(driver, e, refs)
    deals.armed = True
    with pytest.raises(Crash):
        feed(driver, close, refs)
    assert driver.sent("erp.commands.sales-order") == [] and driver.outbox
    driver.restart()
    feed(driver, close, refs)
    [create] = driver.sent("erp.commands.sales-order")
    assert orjson.loads(deals[OPP.encode()])["order"]["create_command_id"] == create["envelope"]["command_id"]


def test_every_uncommitted_input_of_a_key_is_replayed_in_order_and_committed_ones_are_pruned():
    refs = references()
    driver = Driver("deals", deal_flow.TABLES, "deals")
    events = deal_events()
    for e in events:
        feed(driver, e, refs)
    state = driver.state("deals")
    assert len(driver.entries) == 3  # three inputs, none committed
    assert [bool(e.writes) for e in sorted(driver.entries.values(), key=lambda e: e.offset)] == [False, False, True]
    driver.restart()
    sent = len(driver.wire.sent)
    for e in events:  # the whole uncommitted tail again, oldest first
        assert feed(driver, e, refs) is None
    assert driver.state("deals") == state
    assert driver.wire.sent[sent:] == driver.wire.sent[:sent]

    driver.commit("sync.deal-changes", 0, events[-1].lineage.offset + 1)
    src = Source()
    src.offset = 100
    other = src.event("opp-2", src.change("opportunity", "opp-2", header(stage="NEGOTIATION")))
    ctx = deal_flow.Context(refs, POLICY, NOW)
    driver.run(
        inp(other.delivery, "opp-2"), lambda: deal_flow.step(driver.tables, b"opp-2", other, other.delivery, ctx)
    )
    assert {e.offset for e in driver.entries.values()} == {other.lineage.offset}  # opp-1 pruned by a later step
    assert set(driver.outbox) == {*driver.entries, b"\x1f\x01opp-2"}  # and its head row with them
    driver.commit("sync.deal-changes", 0, 102)
    driver.restart()  # rows left by a previous run are found and pruned too
    feed(driver, Source().event(OPP, None), refs)  # a re-check that changes nothing: no entry of its own
    assert driver.outbox == {}


def test_a_redelivered_erp_event_re_sends_its_crm_update_and_alert_and_changes_nothing():
    deal = Deal()  # closed-won, order created
    driver = Driver("deals", deal_flow.TABLES, "deals")
    driver.tables["deals"][OPP.encode()] = deal.stored.encode()
    event = deal.event(ErpKind.INVOICED, NOW + dt.timedelta(minutes=5))  # ahead of its acceptance
    ctx = deal_flow.Context(deal.refs, deal.policy, NOW + dt.timedelta(minutes=5))
    at = "sync.deal-changes/0/900"

    def step():
        return deal_flow.step(driver.tables, OPP.encode(), event, at, ctx)

    first = driver.run(inp(at, OPP), step)
    assert {route(o).topic for o in first.outputs} >= {"crm.commands.update", "sync.drift-alerts"}
    state = driver.state("deals")
    sent = list(driver.wire.sent)
    driver.restart()
    assert driver.run(inp(at, OPP), step) is None
    assert driver.wire.sent == sent + sent and driver.state("deals") == state
    [alert] = driver.sent("sync.drift-alerts")[:1]
    assert orjson.loads(driver.tables["open-drift-alerts"][alert["alert_id"].encode()])["kind"] == alert["kind"]


# --- aggregate parity -------------------------------------------------------------------------

TH = Thresholds(dt.timedelta(seconds=2), Decimal("0.01"), {"w": 4_000})
START = (int(NOW.timestamp() * 1000) // 4_000) * 4_000


def fact(opp: str, side: str, amount: str | None) -> dict:
    return {"opp": opp, "side": side, "currency": "EUR", "at_ms": START + 100, "amount": amount}


def parity_run(driver: Driver, offset: int, message: dict, now: dt.datetime):
    ctx = parity_flow.Context(now, TH)
    return driver.run(
        Input("sync.parity-facts", 1, offset, b"EUR"), lambda: parity_flow.step(driver.tables, message, ctx)
    )


@pytest.mark.parametrize("point", POINTS)
def test_an_aggregate_parity_alert_survives_a_crash_at_either_point(point):
    later = NOW + dt.timedelta(seconds=10)  # the window has ended and settled
    driver = Driver("parity", (parity_flow.WINDOWS, parity_flow.ENTRIES, "open-drift-alerts"), parity_flow.WINDOWS)
    parity_run(driver, 1, fact("opp-1", "crm", "250.00"), NOW)
    parity_run(driver, 2, fact("opp-2", "crm", "250.00"), NOW)
    driver.wire.crash_at = point
    judge = {"judge": True, "currency": "EUR"}
    with pytest.raises(Crash):
        parity_run(driver, 3, judge, later)  # nothing accepted: the window opens an alert
    driver.restart()
    parity_run(driver, 3, judge, later)
    alerts = driver.sent("sync.drift-alerts")
    assert {a["alert_id"] for a in alerts} == {f"parity:EUR:w:{START}"}
    assert all(a["state"] == "OPEN" for a in alerts) and len(alerts) == (1 if point == "after_state" else 2)
    parity_run(driver, 4, judge, later)  # judged already: no second alert
    assert len(driver.sent("sync.drift-alerts")) == len(alerts)


def test_a_fact_replayed_after_a_crash_is_folded_once():
    driver = Driver("parity", (parity_flow.WINDOWS, parity_flow.ENTRIES, "open-drift-alerts"), parity_flow.WINDOWS)
    driver.wire.crash_at = "after_state"
    with pytest.raises(Crash):
        parity_run(driver, 1, fact("opp-1", "crm", "250.00"), NOW)
    driver.restart()
    parity_run(driver, 1, fact("opp-1", "crm", "250.00"), NOW)
    [bucket] = [v for k, v in driver.tables[parity_flow.WINDOWS].items() if k.startswith(b"bucket|")]
    assert orjson.loads(bucket)["crm_count"] == 1


class CountingTable(dict):
    """A table that counts the bytes written to it."""

    written = 0

    def __setitem__(self, key, value):
        self.written += len(value)
        super().__setitem__(key, value)


def test_a_key_with_many_uncommitted_inputs_costs_each_step_the_same():
    """The parity flow's few currency keys take every deal's facts: with one outbox row per key
    holding the list of uncommitted entries, each step rewrote all of them (quadratic in the inputs
    of a commit interval, a quarter of the worker's time in a profile)."""
    driver = Driver("parity", (parity_flow.WINDOWS, parity_flow.ENTRIES, "open-drift-alerts"), parity_flow.WINDOWS)
    driver.tables[parity_flow.WINDOWS] = windows = CountingTable()
    driver.restart()
    per_step = []
    for n in range(1, 401):
        before = windows.written
        parity_run(driver, n, fact(f"opp-{n}", "crm", "250.00"), NOW)
        per_step.append(windows.written - before)
    assert len(driver.entries) == 400  # none committed
    assert max(per_step[-50:]) < 2 * max(per_step[:50])  # not growing with the entries waiting
    assert [e.offset for e in driver.entries.values() if e.writes] == [400]  # only the newest keeps its writes
    driver.commit("sync.parity-facts", 1, 401)
    for n in range(401, 440):  # later steps prune the committed rows, a few at a time
        parity_run(driver, n, fact(f"opp-{n}", "crm", "250.00"), NOW)
    assert min(e.offset for e in driver.entries.values()) >= 401 - 16 * 39 and len(driver.entries) < 400


def test_rows_of_the_older_layout_are_replayed_and_pruned():
    """A worker of the version before left one row per key holding a list of entries."""
    driver = Driver("parity", (parity_flow.WINDOWS, parity_flow.ENTRIES, "open-drift-alerts"), parity_flow.WINDOWS)
    parity_run(driver, 1, fact("opp-1", "crm", "250.00"), NOW)
    [entry] = driver.entries.values()
    legacy = keyed.encode(entry)
    windows = driver.tables[parity_flow.WINDOWS]
    for k in list(driver.outbox):
        del windows[k]
    windows[b"\x1fEUR"] = b"[" + legacy + b"]"  # the older layout: the key's entries in one list
    driver.restart()
    sent = len(driver.wire.sent)
    assert parity_run(driver, 1, fact("opp-1", "crm", "250.00"), NOW) is None  # replayed, not run again
    assert driver.wire.sent[sent:] == driver.wire.sent[:sent]
    driver.commit("sync.parity-facts", 1, 2)
    parity_run(driver, 2, fact("opp-2", "crm", "250.00"), NOW)
    assert b"\x1fEUR" not in windows


# --- exception ledger ------------------------------------------------------------------------


@pytest.mark.parametrize("point", POINTS)
def test_an_escalation_survives_a_crash_at_either_point(point):
    routes = load(get_settings().escalation_rules)
    driver = Driver("ledger", (ledger_flow.LEDGER, ledger_flow.DUE), ledger_flow.LEDGER)
    key = b"opp-e1:ERP_REJECTED:evt-9"

    def run(offset: int, message: dict):
        ctx = ledger_flow.Context(routes, NOW, dt.timedelta(days=90))
        return driver.run(
            Input("sync.exception-ledger", 2, offset, key), lambda: ledger_flow.step(driver.tables, key, message, ctx)
        )

    run(1, {"exception": exception_state.jsonable(rejection_exception("opp-e1", NOW - dt.timedelta(hours=5)))})
    driver.wire.crash_at = point
    with pytest.raises(Crash):
        run(2, {"check": True})
    driver.restart()
    run(2, {"check": True})
    escalations = driver.sent("sync.escalations")
    assert {e["exception_id"] for e in escalations} == {key.decode()}
    assert len(escalations) == (1 if point == "after_state" else 2)
    run(3, {"check": True})  # escalated once, not at every check
    assert len(driver.sent("sync.escalations")) == len(escalations)


# --- accounts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("point", POINTS)
def test_a_customer_upsert_survives_a_crash_even_though_its_reference_data_went_out(point):
    """Re-deciding after the crash would find the customer view already recorded and send nothing;
    the outbox re-sends what was decided."""
    fields = {"name": "Acme", "payment_terms": "NET30"}
    change = RowChange("account", Op.UPSERT, "001-9", fields, frozenset(), Position(7, 1_700_000_000_000), False)
    lineage = Lineage("crm.public.account", 0, 42, 7, None)
    driver = Driver("accounts", (account_flow.VIEWS,), account_flow.VIEWS)
    at = Input("crm.public.account", 0, 42, b"001-9")
    driver.wire.crash_at = point
    with pytest.raises(Crash):
        driver.run(at, lambda: account_flow.step(driver.tables, change, None, REFS, lineage, "005-integration", NOW))
    driver.restart()
    known = Account.model_validate(change.fields)  # the reference data now holds the new account
    assert account_flow.step(driver.tables, change, known, REFS, lineage, "005-integration", NOW).info is None
    driver.run(at, lambda: account_flow.step(driver.tables, change, known, REFS, lineage, "005-integration", NOW))
    upserts = driver.sent("erp.commands.customer")
    assert {u["envelope"]["command_id"] for u in upserts} == {"001-9:upsert:" + change.position.label()}
    assert [a["topic"] for a in driver.sent("sync.audit")][:1] == ["erp.commands.customer"]


@pytest.mark.parametrize("point", POINTS)
def test_a_customer_link_and_its_crm_write_back_survive_a_crash(point):
    """After the crash the link is recorded, so re-deciding would take the redelivered event for a
    duplicate and send nothing; the outbox re-sends the write-back and the reference record."""
    event = CustomerEvent(
        event_id="e-1", account_id="acc-u1", kind=CustomerEventKind.CREATED, customer_number="C-900001",
        occurred_at_ms=1_700_000_000_000,
    )  # fmt: skip
    lineage = Lineage("erp.events.customer", 2, 5, 9, None)
    driver = Driver("customer_links", (link_flow.LINKS,), link_flow.LINKS)
    at = Input("erp.events.customer", 2, 5, b"acc-u1")
    driver.wire.crash_at = point
    with pytest.raises(Crash):
        driver.run(at, lambda: link_flow.step(driver.tables, event, lineage, NOW))
    driver.restart()
    driver.run(at, lambda: link_flow.step(driver.tables, event, lineage, NOW))
    assert link_flow.step(driver.tables, event, lineage, NOW).outputs == []  # recorded: a duplicate now
    updates = driver.sent("crm.commands.account-update")
    assert {u["envelope"]["command_id"] for u in updates} == {"acc-u1:link:e-1"}
    assert [r.key for r in driver.wire.sent if r.topic == "sync.reference-data"][-1] == b"link:acc-u1"


# --- fail-points -------------------------------------------------------------------------------


def test_fail_points_parse_fire_on_the_nth_matching_step_and_refuse_nonsense():
    points = FailPoints("deals.after_state:erp.commands.sales-order@2, parity.after_send")
    assert not points.due("deals.after_state", ["sync.audit"])
    assert not points.due("deals.after_state", ["x.erp.commands.sales-order"])
    assert points.due("deals.after_state", ["x.erp.commands.sales-order", "sync.audit"])
    assert points.due("parity.after_send", [])
    assert not FailPoints("") and not FailPoints("").due("deals.after_state", [])
    for bad in ("deals", "deals.before_state", "deals.after_state@x", "deals.after_send@0", ".after_send"):
        with pytest.raises(ValueError, match="CRM_ERP_FAILPOINTS"):
            parse(bad)


def test_readers_of_a_table_do_not_see_its_outbox_rows():
    refs = references()
    driver = Driver("deals", deal_flow.TABLES, "deals")
    for e in deal_events():
        feed(driver, e, refs)
    assert len(driver.outbox) == 4 and all(k.startswith(b"\x1f") for k in driver.outbox)  # 3 entries, 1 head
    assert set(driver.tables["deals"]) - set(driver.outbox) == {OPP.encode()}
    assert dict(rows(driver.tables["deals"].items())) == driver.state("deals") == {OPP.encode(): ANY}


def test_an_outbox_row_holds_one_copy_of_the_state_however_many_inputs_wait_for_their_commit():
    """A deal with a 400 kB name (valid data) and five uncommitted inputs: every entry with its own
    copy of the state (base64 at that) made a 2.6 MB outbox row, which the broker refused (the corpus
    test's opp-big-name was quarantined instead of ordered)."""
    refs, src = references(), Source()
    driver = Driver("deals", deal_flow.TABLES, "deals")
    big = header(name="N" * 400_000)
    events = [
        src.event(OPP, src.change("opportunity", OPP, {**big, "stage": "PROSPECTING"})),
        src.event(OPP, src.change("opportunity_line_item", "l1", line(OPP, "prod-a", "2", "100"))),
        src.event(OPP, src.change("opportunity_line_item", "l2", line(OPP, "prod-b", "1", "50"))),
        src.event(OPP, src.change("opportunity", OPP, {**big, "stage": "NEGOTIATION"})),
        src.event(OPP, src.change("opportunity", OPP, big)),
    ]
    for e in events:
        feed(driver, e, refs)
    state = driver.tables["deals"][OPP.encode()]
    assert len(driver.entries) == 5 and len(state) > 400_000
    assert [e.offset for e in driver.entries.values() if e.writes] == [events[-1].lineage.offset]  # the newest only
    assert sum(len(row) for row in driver.outbox.values()) < 1.1 * len(state)
    driver.restart()  # and a crash still replays everything: the newest entry's writes, every entry's records
    for e in events:
        assert feed(driver, e, refs) is None
    assert driver.tables["deals"][OPP.encode()] == state
