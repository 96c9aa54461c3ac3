"""Bounded state: which deals and exceptions are settled, when they may go, and what going removes."""

from __future__ import annotations

import datetime as dt

import orjson

from app.domain.changes import Lineage
from app.domain.exceptions import state as exception_state
from app.domain.exceptions.escalation import load
from app.domain.feedback.lifecycle import ErpKind
from app.domain.orders.decide import Outcome, on_renewal, retention
from app.domain.orders.renewals import RenewalSeen
from app.domain.orders.validation import Policy
from app.domain.parity.aggregate import Thresholds
from app.engine.routes import record, route
from app.flows import deals as deal_flow
from app.flows import ledger as ledger_flow
from app.flows import parity as parity_flow
from app.settings import get_settings
from tests.support.deals import NOW, Source, header, line, references
from tests.support.driver import Driver, inp
from tests.support.erp import OPP, Deal, at, ship

WEEK = dt.timedelta(days=7)
POLICY = Policy(retention=WEEK)


def paid_deal(policy: Policy = POLICY, **header_fields) -> Deal:
    """A one-off sale (no contract term to renew unless ``header_fields`` give one), invoiced, not paid."""
    deal = Deal(policy, **{"contract_term_months": None, **header_fields})
    deal.erp(ErpKind.ACCEPTED, at(minutes=5))
    deal.erp(ErpKind.SHIPPED, at(days=2), lines=[ship("l1", "2"), ship("l2", "1")], complete=True)
    deal.erp(ErpKind.INVOICED, at(days=3), due_date="2026-12-30")
    return deal


def test_a_deal_is_settled_when_lost_deleted_or_paid_in_full_and_nothing_is_open():
    deal = paid_deal()
    assert not retention.settled(deal.state, POLICY) and deal.state.settled_at is None  # invoiced, not paid
    deal.erp(ErpKind.PAID, at(days=20))
    assert retention.settled(deal.state, POLICY) and deal.state.settled_at == at(days=20)

    lost = Deal(POLICY, close=False)
    lost.header(NOW, stage="CLOSED_LOST")
    assert lost.state.settled_at == NOW

    cancelled = Deal(POLICY)  # won, ordered, then lost: the order is cancelled, nothing else is open
    cancelled.header(NOW + dt.timedelta(hours=1), stage="CLOSED_LOST")
    assert cancelled.state.order is None and cancelled.state.settled_at is not None

    reopened = Deal(POLICY)  # back in negotiation: it may close again
    reopened.header(NOW + dt.timedelta(hours=1), stage="NEGOTIATION")
    assert reopened.state.settled_at is None

    gap = Deal(POLICY)  # invoiced and paid, but the ERP never reported the acceptance: an alert is open
    gap.erp(ErpKind.INVOICED, at(days=3), due_date="2026-12-30")
    gap.erp(ErpKind.PAID, at(days=4))
    assert gap.state.erp.paid == gap.state.erp.invoiced > 0
    assert gap.state.alerts and gap.state.settled_at is None


def test_lines_without_a_header_settle_too():
    """A line change read after its deal retired (the line topic lagging the opportunity topic by
    more than the period, seen in the soak) leaves a state with lines only: it must go as well."""
    orphan = Deal(POLICY, close=False)
    orphan.crm("opportunity_line_item", "l1", line(OPP, "prod-a", "2", "100"), now=NOW)
    assert orphan.state.header is None and orphan.state.settled_at == NOW
    assert orphan.recheck(NOW + WEEK).outcome is Outcome.RETIRED


def test_a_recheck_does_not_restart_the_period_a_change_does():
    lost = Deal(POLICY, close=False)
    lost.header(NOW, stage="CLOSED_LOST")
    lost.recheck(NOW + dt.timedelta(days=1))
    assert lost.state.settled_at == NOW
    lost.header(NOW + dt.timedelta(days=2), stage="CLOSED_LOST", amount="260.00")
    assert lost.state.settled_at == NOW + dt.timedelta(days=2)


def test_a_won_deal_is_kept_until_a_re_read_of_its_close_would_be_refused_rather_than_ordered():
    deal = paid_deal()
    deal.erp(ErpKind.PAID, at(days=20))
    forget = retention.forget_at(deal.state, POLICY)
    close = deal.state.header.close_date
    assert forget > dt.datetime.combine(close + POLICY.close_date_window, dt.time(), dt.UTC)
    assert not retention.due(deal.state, POLICY, at(days=20) + WEEK)  # settled a week: still too recent a close
    assert retention.due(deal.state, POLICY, forget)
    # the proof of the rule: a closed-won deal first seen on that day is refused, not ordered
    fresh = Deal(POLICY, close=False)
    fresh.crm("opportunity_line_item", "l1", line(OPP, "prod-a", "2", "100"), now=forget)
    fresh.crm("opportunity_line_item", "l2", line(OPP, "prod-b", "1", "50"), now=forget)
    decision = fresh.crm("opportunity", OPP, header(), now=forget)
    assert decision.outcome is Outcome.REJECTED and "CLOSE_DATE_OUT_OF_RANGE" in decision.reasons


def test_a_paid_deal_with_a_contract_term_is_kept_until_its_renewal_is_open_or_won():
    deal = paid_deal(contract_term_months=12)
    deal.erp(ErpKind.PAID, at(days=20))
    assert not retention.settled(deal.state, POLICY) and deal.state.renewal is not None
    renewal = RenewalSeen(OPP, "opp-2", "PROSPECTING", Lineage("sync.deal-changes", 0, 9, None, None))
    deal._record(on_renewal(deal.state, renewal, POLICY, at(days=30)), check=True)
    assert retention.settled(deal.state, POLICY) and deal.state.settled_at == at(days=30)
    lost = RenewalSeen(OPP, "opp-2", "CLOSED_LOST", Lineage("sync.deal-changes", 0, 10, None, None))
    deal._record(on_renewal(deal.state, lost, POLICY, at(days=31)), check=True)
    assert not retention.settled(deal.state, POLICY)


def test_retiring_a_paid_deal_withdraws_its_parity_entries_and_its_lines_from_the_row_index():
    deal = paid_deal()
    deal.erp(ErpKind.PAID, at(days=20))
    retired = deal.recheck(retention.forget_at(deal.state, POLICY))
    assert retired.outcome is Outcome.RETIRED
    assert [record(o) for o in retired.outputs if route(o).topic == "sync.parity-facts"] == [
        {"forget": True, "opp": OPP, "side": side, "currency": "EUR"} for side in ("crm", "erp")
    ]
    index = [(o.key, o.value, o.partition) for o in retired.outputs if route(o).topic == "sync.row-index"]
    assert index == [(f"line:{i}", {"forget": f"line:{i}", "opp": OPP}, 0) for i in ("l1", "l2")]


def run_deal(driver: Driver, event, now, refs):
    ctx = deal_flow.Context(refs, POLICY, now)
    return driver.run(
        inp(event.delivery, OPP), lambda: deal_flow.step(driver.tables, OPP.encode(), event, event.delivery, ctx)
    )


def test_a_lost_deal_is_tombstoned_from_every_table_once_its_period_is_over():
    refs, src = references(), Source()
    driver = Driver("deals", deal_flow.TABLES, "deals")
    for e in [
        src.event(OPP, src.change("opportunity_line_item", "l1", line(OPP, "prod-a", "2", "100"))),
        src.event(OPP, src.change("opportunity", OPP, header())),  # won: ordered, a parity contribution
        src.event(OPP, src.change("opportunity", OPP, header(stage="CLOSED_LOST"))),  # lost: cancelled
    ]:
        run_deal(driver, e, NOW, refs)
    key = OPP.encode()
    due = int(driver.tables["sla-deadlines"][key])
    assert due == int((NOW + WEEK).timestamp() * 1000)  # the sweep re-checks it when its period ends

    early = run_deal(driver, src.event(OPP, None), NOW + dt.timedelta(days=6), refs)
    assert early.info.outcome is not Outcome.RETIRED and key in driver.tables["deals"]
    done = run_deal(driver, src.event(OPP, None), NOW + WEEK, refs)
    assert done.info.outcome is Outcome.RETIRED
    assert all(key not in rows for rows in driver.tables.values())
    # the outbox keeps the entries of inputs not yet committed; only the retiring input's keeps writes
    assert set(driver.outbox) == {*driver.entries, b"\x1f\x01" + key}
    [newest] = [e for e in driver.entries.values() if e.writes]
    assert all(w.value is None for w in newest.writes)  # the retirement: every row of the deal deleted
    # the cancel already withdrew its parity contribution; its line leaves the row index
    assert [(route(o).topic, o.key) for o in done.outputs] == [("sync.row-index", "line:l1")]


def test_a_forgotten_contribution_leaves_the_parity_entries_and_keeps_the_window_sums():
    th = Thresholds(dt.timedelta(seconds=2), POLICY.amount_tolerance, {"w": 4_000})
    driver = Driver("parity", (parity_flow.WINDOWS, parity_flow.ENTRIES, "open-drift-alerts"), parity_flow.WINDOWS)
    fact = {"opp": OPP, "side": "crm", "currency": "EUR", "at_ms": int(NOW.timestamp() * 1000), "amount": "250.00"}
    for offset, message in enumerate([fact, {"forget": True, "opp": OPP, "side": "crm", "currency": "EUR"}]):
        ctx = parity_flow.Context(NOW, th)
        driver.run(
            inp(f"sync.parity-facts/0/{offset}", "EUR"), lambda m=message, c=ctx: parity_flow.step(driver.tables, m, c)
        )
    assert f"EUR|crm|{OPP}".encode() not in driver.tables[parity_flow.WINDOWS]
    [bucket] = [v for k, v in driver.tables[parity_flow.WINDOWS].items() if k.startswith(b"bucket|")]
    assert orjson.loads(bucket)["crm_amount"] == "250.00"


def test_a_resolved_exception_drops_its_payload_and_its_row_goes_after_the_period():
    routes = load(get_settings().escalation_rules)
    driver = Driver("ledger", (ledger_flow.LEDGER, ledger_flow.DUE), ledger_flow.LEDGER)
    key = b"opp-1:ERP_REJECTED:evt-9"
    record = {"exception_id": key.decode(), "reason_code": "ERP_REJECTED", "severity": "HIGH", "detail": "x",
              "correlation_id": OPP, "sla_minutes": 240, "raised_at": NOW.isoformat(), "status": "OPEN",
              "original_key": "a2V5", "original_value": "dmFsdWU=", "original_headers": {"h": "dg=="}}  # fmt: skip
    resolution = {"exception_id": key.decode(), "resolution": "FIXED", "resolved_by": "ops:jane", "note": None}

    def run(offset: int, message: dict, now: dt.datetime):
        ctx = ledger_flow.Context(routes, now, WEEK)
        at_ = inp(f"sync.exception-ledger/0/{offset}", key)
        return driver.run(at_, lambda: ledger_flow.step(driver.tables, key, message, ctx))

    run(1, {"exception": record}, NOW)
    assert orjson.loads(driver.tables[ledger_flow.LEDGER][key])["exception"]["original_value"] == "dmFsdWU="
    run(2, {"resolution": resolution}, NOW + dt.timedelta(hours=1))
    row = orjson.loads(driver.tables[ledger_flow.LEDGER][key])
    assert row["status"] == "RESOLVED" and row["exception"]["original_value"] is None
    assert row["exception"]["original_key"] is None and row["exception"]["original_headers"] == {}
    assert row["exception"]["detail"] == "x"  # the context stays
    assert int(driver.tables[ledger_flow.DUE][key]) == exception_state.forget_at_ms(row, WEEK)
    run(3, {"check": True}, NOW + dt.timedelta(days=6))
    assert key in driver.tables[ledger_flow.LEDGER]
    run(4, {"check": True}, NOW + dt.timedelta(hours=1) + WEEK)
    assert key not in driver.tables[ledger_flow.LEDGER] and key not in driver.tables[ledger_flow.DUE]
