"""One deal's trace from hand-built records: what belongs to the deal, time order, summaries, ids, replays."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from app.readmodels.trace import (
    AUDIT,
    CRM_UPDATES,
    DEAD_LETTER,
    DEAL_CHANGES,
    DRIFT_ALERTS,
    ERP_COMMANDS,
    ERP_EVENTS,
    ESCALATIONS,
    EXCEPTIONS,
    RESOLUTIONS,
    Deal,
    Record,
    entry_of,
    iso,
    render,
    timeline,
)

T0 = 1_717_200_000_000  # 2024-06-01T00:00:00Z
OPP = "opp-42"
PREFIX = "t1."
ENVELOPE = {"command_id": "opp-42:create:lsn:17", "correlation_id": OPP, "causation_ids": []}

_offsets: dict[str, int] = {}


def rec(topic: str, at: int, key: str | None = OPP, value=None, headers=None, error=None, partition=0) -> Record:
    offset = _offsets[topic] = _offsets.get(topic, -1) + 1
    return Record(topic, partition, offset, at, key, value, headers or {}, error)


def cdc(at: int, table: str, row_id: str, fields: dict, offset: int, opp: str = OPP) -> Record:
    value = {
        "opp": opp,
        "table": table,
        "op": "UPSERT",
        "id": row_id,
        "fields": fields,
        "unavailable": [],
        "lsn": 100 + offset,
        "ts_ms": at,
        "snapshot": False,
        "lineage": [f"{PREFIX}crm.public.{table}", 0, offset, 3, at],
    }
    return rec(DEAL_CHANGES, at, opp, value)


def erp_change(at: int, kind: str, event_id: str, command_id: str | None = None) -> Record:
    erp = {"event_id": event_id, "command_id": command_id, "order_number": "SO-1", "kind": kind, "body": {}}
    return rec(DEAL_CHANGES, at, OPP, {"opp": OPP, "erp": erp, "lineage": [f"{PREFIX}{ERP_EVENTS}", 0, 0, 9, at]})


def erp_in(at: int, kind: str, event_id: str) -> Record:
    value = {
        "event_id": event_id,
        "correlation_id": OPP,
        "command_id": ENVELOPE["command_id"],
        "order_number": "SO-1",
        "occurred_at": dt.datetime.fromtimestamp(at / 1000, dt.UTC),
        "erp_system": "erp-sim",
        "event": (f"io.crmerpsync.erp.events.{kind}", {"order_number": "SO-1"}),
    }
    return rec(ERP_EVENTS, at, OPP, value)


def create(at: int) -> Record:
    body = {"opportunity_id": OPP, "customer_number": "C-1001", "currency": "EUR", "amount": Decimal("250.00")}
    body["lines"] = [{"line_id": "l1"}, {"line_id": "l2"}]
    return rec(
        ERP_COMMANDS, at, OPP, {"envelope": ENVELOPE, "command": ("io.crmerpsync.erp.commands.CreateSalesOrder", body)}
    )


def crm_update(at: int, order_status: str) -> Record:
    value = {
        "envelope": {**ENVELOPE, "command_id": f"{OPP}:crm-update:evt-1"},
        "opportunity_id": OPP,
        "erp_order_number": "SO-1",
        "order_status": order_status,
        "fulfilment_status": "NOT_SHIPPED",
        "invoice_status": None,
        "payment_status": None,
        "credit_hold": False,
        "disputed": None,
    }
    return rec(CRM_UPDATES, at, OPP, value)


def exception(at: int, exception_id: str, key: str | None = OPP, correlation: str | None = OPP, **kw) -> Record:
    value = {
        "exception_id": exception_id,
        "reason_code": "ERP_REJECTED",
        "exception_type": "ERP_REJECTION",
        "severity": "HIGH",
        "correlation_id": correlation,
        "owner_team": "order-management",
        "detail": "customer   over\ncredit limit",
        "status": "OPEN",
        "replay_of": None,
        "replay_count": 0,
        **kw,
    }
    return rec(EXCEPTIONS, at, key, value)


def test_a_deal_history_comes_out_in_time_order_whatever_order_the_topics_were_read_in():
    records = [
        crm_update(T0 + 500, "ACCEPTED"),
        create(T0 + 300),
        cdc(T0 + 100, "opportunity", OPP, {"stage": "NEGOTIATION", "amount": "250.00", "currency": "EUR"}, 16),
        cdc(T0 + 200, "opportunity", OPP, {"stage": "CLOSED_WON", "amount": "250.00", "currency": "EUR"}, 17),
        erp_change(T0 + 400, "OrderAccepted", "evt-1", ENVELOPE["command_id"]),
        erp_in(T0 + 400, "OrderAccepted", "evt-1"),  # same millisecond: the ERP input comes first
    ]
    entries = timeline(records, OPP, prefix=PREFIX)
    assert [(e.at, e.topic, e.kind) for e in entries] == [
        ("2024-06-01T00:00:00.100Z", DEAL_CHANGES, "CDC"),
        ("2024-06-01T00:00:00.200Z", DEAL_CHANGES, "CDC"),
        ("2024-06-01T00:00:00.300Z", ERP_COMMANDS, "ERP-COMMAND"),
        ("2024-06-01T00:00:00.400Z", ERP_EVENTS, "ERP-IN"),
        ("2024-06-01T00:00:00.400Z", DEAL_CHANGES, "ERP"),
        ("2024-06-01T00:00:00.500Z", CRM_UPDATES, "CRM-UPDATE"),
    ]
    summaries = [e.summary for e in entries]
    assert (
        summaries[1]
        == "CRM opportunity UPSERT opp-42 stage=CLOSED_WON amount=250.00 currency=EUR (crm.public.opportunity/0/17)"
    )
    assert summaries[2] == "CreateSalesOrder 250.00 EUR 2 line(s) customer=C-1001"
    assert summaries[3] == "ERP-IN OrderAccepted evt-1 order=SO-1"
    assert summaries[4] == "ERP OrderAccepted evt-1 order=SO-1"
    assert summaries[5] == "CRM update order=ACCEPTED fulfilment=NOT_SHIPPED erp_order=SO-1"
    assert entries[2].ids == {"command_id": "opp-42:create:lsn:17"}
    assert entries[4].ids == {"event_id": "evt-1", "command_id": "opp-42:create:lsn:17"}
    assert entries[5].ids == {"command_id": "opp-42:crm-update:evt-1"}


def test_only_the_deals_records_are_kept_and_its_exceptions_bring_their_resolutions_and_escalations():
    mine_id, other_id = f"{OPP}:ERP_REJECTED:evt-9", "opp-420:ERP_REJECTED:evt-3"
    records = [
        create(T0),
        rec(ERP_COMMANDS, T0, "opp-420", {"envelope": ENVELOPE, "command": ("x.CreateSalesOrder", {})}),
        exception(T0 + 10, mine_id),
        exception(T0 + 11, other_id, key="opp-420", correlation="opp-420"),
        exception(
            T0 + 12, "crm.public.opportunity/0/5:NOT_A_CDC_EVENT", key="crm.public.opportunity/0/5", correlation=None
        ),
        rec(RESOLUTIONS, T0 + 20, mine_id, {"exception_id": mine_id, "resolution": "REPLAYED", "resolved_by": "ops"}),
        rec(RESOLUTIONS, T0 + 21, other_id, {"exception_id": other_id, "resolution": "MANUAL", "resolved_by": "ops"}),
        rec(
            ESCALATIONS,
            T0 + 30,
            mine_id,
            {
                "exception_id": mine_id,
                "escalation_id": "esc-1",
                "reason_code": "ERP_REJECTED",
                "route_team": "finance",
                "channel": "pager",
                "mode": "PAGE",
                "severity": "HIGH",
                "overdue_minutes": 5,
            },
        ),
        rec(
            DRIFT_ALERTS,
            T0 + 40,
            f"{OPP}:missing:accepted:1",
            {
                "alert_id": f"{OPP}:missing:accepted:1",
                "kind": "MISSING_EVENT",
                "state": "OPEN",
                "severity": "HIGH",
                "expected": "OrderAccepted",
                "observed": None,
                "amount_at_risk": Decimal("250.00"),
                "currency": "EUR",
            },
        ),
        rec(DRIFT_ALERTS, T0 + 41, "parity:EUR:w:1", {"alert_id": "parity:EUR:w:1", "kind": "AGGREGATE_PARITY"}),
        rec(DRIFT_ALERTS, T0 + 42, "opp-420:missing:accepted:1", {"alert_id": "opp-420:missing:accepted:1"}),
        rec(
            AUDIT,
            T0 + 50,
            OPP,
            {
                "audit_id": "audit:c1",
                "action": "COMMAND_EMITTED",
                "actor": "crm-erp-sync",
                "actor_kind": "SERVICE",
                "subject_id": "c1",
                "correlation_id": OPP,
            },
        ),
        rec(AUDIT, T0 + 51, "opp-420", {"audit_id": "audit:c2", "action": "COMMAND_EMITTED", "subject_id": "c2"}),
    ]
    entries = timeline(records, OPP)
    assert [(e.kind, e.ids) for e in entries] == [
        ("ERP-COMMAND", {"command_id": ENVELOPE["command_id"]}),
        ("EXCEPTION", {"exception_id": mine_id}),
        ("RESOLUTION", {"exception_id": mine_id}),
        ("ESCALATION", {"exception_id": mine_id, "escalation_id": "esc-1"}),
        ("DRIFT", {"alert_id": f"{OPP}:missing:accepted:1"}),
        ("AUDIT", {"audit_id": "audit:c1"}),
    ]
    by_kind = {e.kind: e.summary for e in entries}
    assert by_kind["EXCEPTION"] == (
        "EXCEPTION ERP_REJECTED OPEN (ERP_REJECTION, HIGH) → order-management: customer over credit limit"
    )
    assert by_kind["RESOLUTION"] == "RESOLVED REPLAYED by ops"
    assert by_kind["ESCALATION"] == "ESCALATION ERP_REJECTED to finance via pager (PAGE, HIGH), 5 min overdue"
    assert by_kind["DRIFT"] == (
        "DRIFT MISSING_EVENT OPEN (HIGH): expected OrderAccepted, observed None, at risk 250.00 EUR"
    )
    assert by_kind["AUDIT"] == "AUDIT COMMAND_EMITTED by crm-erp-sync (SERVICE) on c1"


def test_an_exception_keyed_otherwise_still_belongs_by_its_correlation_id():
    deal = Deal(OPP)
    assert deal.owns(exception(T0, "x:1", key="crm.public.opportunity/0/9", correlation=OPP))
    assert deal.exception_ids == {"x:1"}
    assert deal.wants(RESOLUTIONS, "x:1") and deal.wants(ESCALATIONS, "x:1") and not deal.wants(RESOLUTIONS, "x:2")


def test_dead_letters_belong_by_the_opp_or_by_a_crm_row_of_the_deal():
    dl = {
        "x-reason": "AVRO_DECODE_ERROR",
        "x-detail": "schema id 1: EOFError()",
        "x-source-topic": f"{PREFIX}crm.public.opportunity_line_item",
        "x-source-partition": "2",
        "x-source-offset": "7",
        "x-exception-id": "exc-7",
    }
    records = [
        cdc(T0, "opportunity_line_item", f"{OPP}-l1", {"product_id": "prod-a", "quantity": "2.0000"}, 3),
        rec(DEAD_LETTER, T0 + 1, f"{OPP}-l1", None, dl),
        rec(DEAD_LETTER, T0 + 2, OPP, b"garbage", {"x-reason": "BAD_MAGIC_BYTE"}),
        rec(DEAD_LETTER, T0 + 3, f"{OPP}-l9", None, dl),  # a line this deal never had
        rec(DEAD_LETTER, T0 + 4, None, None, dl),
    ]
    entries = timeline(records, OPP, prefix=PREFIX)
    assert [e.summary for e in entries] == [
        "CRM opportunity_line_item UPSERT opp-42-l1 product_id=prod-a quantity=2.0000 "
        "(crm.public.opportunity_line_item/0/3)",
        "DEAD-LETTER AVRO_DECODE_ERROR from crm.public.opportunity_line_item/2/7: schema id 1: EOFError()",
        "DEAD-LETTER BAD_MAGIC_BYTE",
    ]
    assert entries[1].ids == {"exception_id": "exc-7"} and entries[2].ids == {}


def test_a_dead_letter_brings_its_exception_even_when_that_is_keyed_by_coordinates_and_its_resolution():
    source = f"{PREFIX}{ERP_EVENTS}"
    dl = {"x-reason": "AVRO_DECODE_ERROR", "x-source-topic": source, "x-source-partition": "0", "x-source-offset": "1"}
    dlq_id = f"dlq:{source}/0/1"
    records = [
        rec(DEAD_LETTER, T0, OPP, None, {**dl, "x-exception-id": dlq_id}),
        exception(T0 + 1, dlq_id, key=f"{source}/0/1", correlation=None, status="DEAD_LETTERED"),
        exception(T0 + 2, f"dlq:{source}/0/2", key=f"{source}/0/2", correlation=None),  # someone else's
        rec(RESOLUTIONS, T0 + 3, dlq_id, {"exception_id": dlq_id, "resolution": "REPLAYED", "resolved_by": "bob"}),
        rec(AUDIT, T0 + 4, dlq_id, {"audit_id": "a1", "action": "REPLAYED", "actor": "bob", "subject_id": dlq_id}),
    ]
    entries = timeline(records, OPP)
    assert [(e.kind, e.ids) for e in entries] == [
        ("DEAD-LETTER", {"exception_id": dlq_id}),
        ("EXCEPTION", {"exception_id": dlq_id}),
        ("RESOLUTION", {"exception_id": dlq_id}),
        ("AUDIT", {"audit_id": "a1"}),
    ]
    deal = Deal(OPP)
    assert not deal.wants(EXCEPTIONS, f"{source}/0/1")
    deal.owns(records[0])
    assert deal.wants(EXCEPTIONS, f"{source}/0/1") and deal.wants(RESOLUTIONS, dlq_id)


def test_replays_are_marked_with_their_id_and_origin():
    headers = {"x-replay-id": "rp-3", "x-replay-of": f"{OPP}:MISSING_BILL_TO:lsn:1"}
    replayed = cdc(T0, "opportunity", OPP, {"stage": "CLOSED_WON"}, 5)
    replayed = Record(replayed.topic, 0, 99, T0, OPP, replayed.value, headers)
    (entry,) = timeline([replayed], OPP, prefix=PREFIX)
    assert entry.replay == {"id": "rp-3", "of": f"{OPP}:MISSING_BILL_TO:lsn:1"}
    assert entry.ids == {"replay_id": "rp-3"}
    assert entry.line().endswith(f"[replay_id=rp-3]  (replay rp-3 of {OPP}:MISSING_BILL_TO:lsn:1)")
    assert entry.to_json()["replay"] == {"id": "rp-3", "of": f"{OPP}:MISSING_BILL_TO:lsn:1"}


def test_rechecks_only_when_verbose_and_since_cuts_earlier_events():
    records = [
        rec(DEAL_CHANGES, T0, OPP, {"opp": OPP, "recheck": True}),
        cdc(T0 + 1000, "opportunity", OPP, {"stage": "CLOSED_WON"}, 1),
        create(T0 + 2000),
    ]
    assert [e.kind for e in timeline(records, OPP)] == ["CDC", "ERP-COMMAND"]
    assert [e.kind for e in timeline(records, OPP, verbose=True)] == ["RECHECK", "CDC", "ERP-COMMAND"]
    assert [e.kind for e in timeline(records, OPP, since_ms=T0 + 1000)] == ["CDC", "ERP-COMMAND"]
    assert [e.kind for e in timeline(records, OPP, since_ms=T0 + 1001)] == ["ERP-COMMAND"]


def test_an_undecodable_message_of_the_deal_is_shown_not_dropped():
    bad = rec(ERP_EVENTS, T0, OPP, None, error="AVRO_DECODE_ERROR: schema id 1: EOFError()")
    (entry,) = timeline([bad], OPP)
    assert (entry.kind, entry.summary) == ("ERP-IN", "undecodable: AVRO_DECODE_ERROR: schema id 1: EOFError()")
    assert entry_of(rec(CRM_UPDATES, T0, OPP, None)) is None  # a tombstone is no event


def test_rendering_aligns_columns_and_json_has_the_same_fields():
    entries = timeline([cdc(T0, "opportunity", OPP, {"stage": "CLOSED_WON"}, 17), create(T0 + 1)], OPP, prefix=PREFIX)
    lines = render(entries, OPP).splitlines()
    assert lines == [
        "2024-06-01T00:00:00.000Z  sync.deal-changes         CDC          "
        "CRM opportunity UPSERT opp-42 stage=CLOSED_WON (crm.public.opportunity/0/17)",
        "2024-06-01T00:00:00.001Z  erp.commands.sales-order  ERP-COMMAND  "
        "CreateSalesOrder 250.00 EUR 2 line(s) customer=C-1001  [command_id=opp-42:create:lsn:17]",
    ]
    as_json = json.loads(json.dumps([e.to_json() for e in entries]))
    assert as_json[1] == {
        "at": "2024-06-01T00:00:00.001Z",
        "topic": ERP_COMMANDS,
        "partition": 0,
        "offset": entries[1].offset,
        "kind": "ERP-COMMAND",
        "summary": "CreateSalesOrder 250.00 EUR 2 line(s) customer=C-1001",
        "ids": {"command_id": "opp-42:create:lsn:17"},
        "replay": None,
    }
    assert render([], OPP) == "no events for opp-42\n"


def test_iso_is_exact_to_the_millisecond():
    assert iso(T0 + 999) == "2024-06-01T00:00:00.999Z"
    assert iso(1_717_243_199_123) == "2024-06-01T11:59:59.123Z"
    assert iso(None) is None
