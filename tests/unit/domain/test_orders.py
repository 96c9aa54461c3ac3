"""Opportunity-to-order decisions, without Kafka: one complete, validated order per closed-won deal."""

from __future__ import annotations

from app.cdc import messages
from app.domain.changes import Op
from app.domain.errors import ReasonCode
from app.domain.orders.deal import source_ts_ms
from app.domain.orders.decide import Outcome, decide
from app.domain.orders.validation import Policy
from app.domain.outputs import OrderAction
from app.engine.routes import record, route
from tests.support.deals import NOW, Source, header, line, references

POLICY = Policy()


def run(events, refs=None, state=None):
    refs = refs or references()
    decisions = []
    for event in events:
        d = decide(state, event, refs, POLICY, NOW)
        state = d.state
        decisions.append(d)
    return state, decisions


def commands(decisions):
    return [o for d in decisions for o in d.outputs if route(o).topic == "erp.commands.sales-order"]


def deal_events(src: Source, opp="opp-1", stage="CLOSED_WON"):
    return [
        src.event(opp, src.change("opportunity_line_item", "l1", line(opp, "prod-a", "2", "100"))),
        src.event(opp, src.change("opportunity_line_item", "l2", line(opp, "prod-b", "1", "50"))),
        src.event(opp, src.change("opportunity", opp, header(stage=stage))),
    ]


def test_closed_won_deal_with_complete_context_yields_one_create_with_full_context():
    src = Source()
    state, decisions = run(deal_events(src))
    [cmd] = commands(decisions)
    body = cmd.value["command"]
    assert cmd.action is OrderAction.CREATE and record(cmd)["command"]["-type"] == str(OrderAction.CREATE)
    assert cmd.key == "opp-1" and cmd.value["envelope"]["correlation_id"] == "opp-1"
    assert cmd.value["envelope"]["command_id"] == f"opp-1:create:{state.close_pos.position().label()}"
    assert body["customer_number"] == "C-1001" and body["amount"] == "250.00"
    assert [ln["erp_item_code"] for ln in body["lines"]] == ["ITEM-A", "ITEM-B"]
    assert body["payment_terms"] == "NET30" and body["billing_schedule"] == "ANNUAL"
    assert body["bill_to"]["city"] == "Berlin" and body["tax_code"] == "DE-STD"
    assert decisions[-1].outcome is Outcome.APPLIED


def test_duplicate_close_event_yields_no_second_command():
    src = Source()
    events = deal_events(src)
    dup = src.event("opp-1", events[-1].change)  # same change, new offset: a CDC duplicate
    _, decisions = run([*events, dup])
    assert len(commands(decisions)) == 1
    assert decisions[-1].outcome is Outcome.DUPLICATE


def test_reordered_events_still_yield_exactly_one_create():
    src = Source()
    events = deal_events(src)
    reordered = [events[2], events[0], events[1]]
    _, decisions = run(reordered)
    [cmd] = commands(decisions)
    assert cmd.value["command"]["amount"] == "250.00" and len(cmd.value["command"]["lines"]) == 2


def test_stale_header_is_not_applied():
    src = Source()
    old = src.change("opportunity", "opp-1", header(stage="NEGOTIATION"))
    state, _ = run(deal_events(src))
    d = decide(state, src.event("opp-1", old), references(), POLICY, NOW)
    assert d.outcome is Outcome.STALE and d.state.header.stage == "CLOSED_WON" and not d.outputs


def test_reopen_after_order_cancels_it_and_reclose_creates_a_new_order():
    src = Source()
    state, decisions = run(deal_events(src))
    reopen = src.event("opp-1", src.change("opportunity", "opp-1", header(stage="NEGOTIATION")))
    reclose = src.event("opp-1", src.change("opportunity", "opp-1", header()))
    state, more = run([reopen, reclose], state=state)
    kinds = [record(c)["command"]["-type"].rsplit(".", 1)[1] for c in commands(decisions + more)]
    assert kinds == ["CreateSalesOrder", "CancelSalesOrder", "CreateSalesOrder"]
    ids = [c.value["envelope"]["command_id"] for c in commands(decisions + more)]
    assert len(set(ids)) == 3
    assert commands(more)[0].value["command"]["reason"] == "DEAL_REOPENED"


def test_lost_deal_cancels_with_reason_deal_lost():
    src = Source()
    state, _ = run(deal_events(src))
    lost = src.event("opp-1", src.change("opportunity", "opp-1", header(stage="CLOSED_LOST")))
    _, d = run([lost], state=state)
    assert commands(d)[0].value["command"]["reason"] == "DEAL_LOST"


def test_line_change_after_create_amends_the_order():
    src = Source()
    state, _ = run(deal_events(src))
    more = src.event("opp-1", src.change("opportunity_line_item", "l2", line("opp-1", "prod-b", "2", "50")))
    amount = src.event("opp-1", src.change("opportunity", "opp-1", header(amount="300.00")))
    _, d = run([more, amount], state=state)
    kinds = [record(c)["command"]["-type"].rsplit(".", 1)[1] for c in commands(d)]
    assert kinds == ["AmendSalesOrder"]
    assert commands(d)[0].value["command"]["amount"] == "300.00"


def test_unlinked_customer_parks_and_the_recheck_after_linking_creates_the_order():
    src = Source()
    unlinked = references(linked=False)
    state, decisions = run(deal_events(src), refs=unlinked)
    assert decisions[-1].outcome is Outcome.PARKED and state.parked
    [exc] = [o for o in decisions[-1].outputs if route(o).topic == "sync.exceptions"]
    assert exc.value["reason_code"] == "CUSTOMER_NOT_LINKED" and exc.value["status"] == "PARKED"
    assert commands(decisions) == []

    state, d = run([src.event("opp-1", None)], refs=references(linked=True), state=state)
    assert len(commands(d)) == 1
    [res] = [o for o in d[0].outputs if route(o).topic == "sync.exception-resolutions"]
    assert res.value["resolution"] == "DEPENDENCY_ARRIVED" and res.value["exception_id"] == exc.value["exception_id"]


def test_incomplete_deal_is_rejected_with_reason_codes_and_nothing_is_created():
    src = Source()
    bad = header(payment_terms=None, billing_schedule="UNKNOWN", amount="999.00")
    refs = references()
    refs.accounts["acc-1"] = refs.accounts["acc-1"].model_copy(update={"payment_terms": None})
    events = [*deal_events(src)[:2], src.event("opp-1", src.change("opportunity", "opp-1", bad))]
    _, decisions = run(events, refs=refs)
    assert decisions[-1].outcome is Outcome.REJECTED and commands(decisions) == []
    assert set(decisions[-1].reasons) == {
        ReasonCode.MISSING_PAYMENT_TERMS,
        ReasonCode.MISSING_BILLING_SCHEDULE,
        ReasonCode.AMOUNT_MISMATCH,
    }
    for o in decisions[-1].outputs:
        assert o.value["amount_at_risk"] == "999.00" and o.value["owner_team"] and o.value["sla_minutes"] > 0


def test_changes_by_the_integration_user_are_not_turned_into_commands():
    src = Source()
    state, _ = run(deal_events(src))
    echo = header(amount="250.00", last_modified_by=POLICY.integration_user, name="written back by the service")
    d = decide(state, src.event("opp-1", src.change("opportunity", "opp-1", echo)), references(), POLICY, NOW)
    assert d.outcome is Outcome.LOOP_SUPPRESSED and not d.outputs


def test_unavailable_toast_column_keeps_the_previous_value():
    src = Source()
    state, _ = run(deal_events(src))
    fields = {k: v for k, v in header().items() if k != "name"}
    d = decide(
        state,
        src.event("opp-1", src.change("opportunity", "opp-1", fields, unavailable={"name"})),
        references(),
        POLICY,
        NOW,
    )
    assert d.state.header.name == "ACME expansion"


def test_line_delete_removes_the_line_and_amends():
    src = Source()
    state, _ = run(deal_events(src))
    delete = src.event("opp-1", src.change("opportunity_line_item", "l2", {}, op=Op.DELETE))
    amount = src.event("opp-1", src.change("opportunity", "opp-1", header(amount="200.00")))
    _, d = run([delete, amount], state=state)
    [amend] = commands(d)
    assert [ln["line_id"] for ln in amend.value["command"]["lines"]] == ["l1"]


def test_every_output_is_a_valid_record_of_its_contract():
    import io

    import fastavro

    from app.contracts import default_index
    from app.contracts.models import model

    src = Source()
    state, decisions = run(deal_events(src), refs=references(linked=False))
    state, more = run([src.event("opp-1", None)], state=state)
    reopen = src.event("opp-1", src.change("opportunity", "opp-1", header(stage="NEGOTIATION")))
    _, last = run([reopen], state=state)
    everything = [o for d in decisions + more + last for o in d.outputs]
    facts = [o for o in everything if route(o).contract == "json"]
    assert [(route(f).topic, f.value["side"], f.value["amount"]) for f in facts] == [
        ("sync.parity-facts", "crm", "250.00"),
        ("sync.parity-facts", "crm", None),  # the reopen withdraws the deal's contribution
    ]
    outputs = [o for o in everything if route(o).contract != "json"]
    assert {route(o).contract.rsplit(".", 1)[1] for o in outputs} == {
        "SalesOrderCommand",
        "ExceptionRecord",
        "ExceptionResolution",
        "AuditRecord",
    }
    for o in outputs:
        record = model(route(o).contract).model_validate(o.value)
        schema = fastavro.parse_schema(default_index().expanded(route(o).contract))
        fastavro.schemaless_writer(io.BytesIO(), schema, record.to_avro())


def test_within_the_grace_period_a_close_seen_before_its_lines_raises_nothing():
    import datetime as dt

    from app.domain.orders.validation import Policy as P

    policy, src = P(grace=dt.timedelta(seconds=10)), Source()
    events = deal_events(src)
    close_first = decide(None, events[2], references(), policy, NOW)
    assert close_first.outcome is Outcome.PENDING and close_first.outputs == []
    state = close_first.state
    for i, event in enumerate(events[:2], start=1):
        d = decide(state, event, references(), policy, NOW + dt.timedelta(seconds=i))
        state = d.state
    assert [route(o).topic for o in d.outputs] == ["erp.commands.sales-order", "sync.audit", "sync.parity-facts"]
    assert state.failing_since is None


def test_after_the_grace_period_the_recheck_raises_the_exceptions():
    import datetime as dt

    from app.domain.orders.validation import Policy as P

    policy, src = P(grace=dt.timedelta(seconds=10)), Source()
    bad = src.event("opp-1", src.change("opportunity", "opp-1", header(payment_terms=None, billing_schedule=None)))
    refs = references()
    refs.accounts["acc-1"] = refs.accounts["acc-1"].model_copy(update={"payment_terms": None})
    events = [*deal_events(src)[:2], bad]
    state = None
    for event in events:
        d = decide(state, event, refs, policy, NOW)
        state = d.state
    assert d.outcome is Outcome.PENDING and d.outputs == [] and state.parked
    later = decide(state, src.event("opp-1", None), refs, policy, NOW + dt.timedelta(seconds=11))
    assert later.outcome is Outcome.REJECTED and not later.state.parked
    assert {o.value["reason_code"] for o in later.outputs} == {"MISSING_PAYMENT_TERMS", "MISSING_BILLING_SCHEDULE"}


def test_a_change_back_from_a_retry_tier_is_superseded_by_what_overtook_it():
    """Retries supersede: the close went to a retry tier, the deal was reopened meanwhile; the close
    coming back (a new delivery, an older source position) changes nothing and creates nothing."""
    src = Source()
    lines = deal_events(src)[:2]
    close = src.change("opportunity", "opp-1", header())  # fails transiently: off to a retry tier
    reopen = src.change("opportunity", "opp-1", header(stage="NEGOTIATION"))
    state, decisions = run([*lines, src.event("opp-1", reopen)])
    back = decide(state, src.event("opp-1", close), references(), POLICY, NOW)  # new offset, old LSN
    assert back.outcome is Outcome.STALE and not back.outputs and not commands(decisions)
    assert back.state.header.stage == "NEGOTIATION"


def test_a_line_change_back_from_a_retry_tier_still_applies_when_nothing_newer_touched_its_row():
    src = Source()
    l1, l2, close = deal_events(src)
    state, decisions = run([l1, close])  # l2 is in a retry tier: the deal fails its amount check
    assert not commands(decisions)
    back = decide(state, src.event("opp-1", l2.change), references(), POLICY, NOW)
    assert [record(c)["command"]["-type"].rsplit(".", 1)[1] for c in commands([back])] == ["CreateSalesOrder"]


def test_a_create_after_a_recheck_dates_from_the_close_for_the_latency_metric():
    src = Source()
    state, _ = run(deal_events(src), refs=references(linked=False))
    recheck = messages.parse_deal_change(messages.recheck("opp-1"), "sync.deal-changes", "sync.deal-changes/0/9")
    assert recheck.lineage.source_ts_ms is None  # what the parked-deal timer sends carries no source time
    state, d = run([recheck], refs=references(linked=True), state=state)
    assert len(commands(d)) == 1
    assert source_ts_ms(state, recheck.lineage.source_ts_ms) == state.close_pos.ts_ms
    assert source_ts_ms(state, 1_700_000_000_000) == 1_700_000_000_000  # the event's own time when it has one


def test_a_pending_deal_stays_due_for_its_grace_end_recheck_whatever_comes_in_meanwhile():
    """The parked value is judged from the state, not the clock. Judged by the clock, a duplicate or
    a redelivery handled after the grace period but before the re-check recorded no grace end and no
    reason, so the re-check never fired and the deal never got its order."""
    import datetime as dt

    import orjson

    from app.domain.orders.decide import waiting_for
    from app.domain.orders.validation import Policy as P

    policy, src = P(grace=dt.timedelta(seconds=1)), Source()
    close = deal_events(src)[2]
    pending = decide(None, close, references(), policy, NOW)
    assert pending.outcome is Outcome.PENDING and pending.state.parked
    grace_ends_ms = int((NOW + policy.grace).timestamp() * 1000)
    assert orjson.loads(waiting_for(pending.state, policy.grace))["grace_ends_ms"] == grace_ends_ms

    later = NOW + dt.timedelta(seconds=5)
    again = decide(pending.state, src.event("opp-1", close.change), references(), policy, later)
    assert again.outcome is Outcome.DUPLICATE and again.state.parked
    assert orjson.loads(waiting_for(again.state, policy.grace)) == {"grace_ends_ms": grace_ends_ms}

    raised = decide(again.state, src.event("opp-1", None), references(), policy, later)
    assert raised.outcome is Outcome.REJECTED and raised.state.open_exceptions  # no lines: raised now
    after = orjson.loads(waiting_for(raised.state, policy.grace))
    assert "grace_ends_ms" not in after and after["reasons"] == sorted(raised.state.open_exceptions)
    assert after["account_id"] == "acc-1"


def test_a_deal_in_its_grace_period_waits_for_the_same_thing_whichever_lines_come_in():
    """So the lines that follow an early close cost no parked-table write each."""
    import datetime as dt

    import orjson

    from app.domain.orders.decide import waiting_for
    from app.domain.orders.validation import Policy as P

    policy, src = P(grace=dt.timedelta(seconds=30)), Source()
    line, _, close = deal_events(src)
    pending = decide(None, close, references(), policy, NOW)
    before = waiting_for(pending.state, policy.grace)
    with_line = decide(pending.state, line, references(), policy, NOW)
    assert pending.outcome is with_line.outcome is Outcome.PENDING
    assert (pending.reasons, with_line.reasons) == ([ReasonCode.NO_LINES], [ReasonCode.AMOUNT_MISMATCH])
    assert waiting_for(with_line.state, policy.grace) == before
    assert set(orjson.loads(before)) == {"grace_ends_ms"}
