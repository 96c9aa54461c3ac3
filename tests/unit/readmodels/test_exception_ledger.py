"""The exception ledger read as data: row parsing, filters, rendering and operator resolutions."""

from __future__ import annotations

import base64
import datetime as dt
import json
from decimal import Decimal

import pytest

from app.contracts.models import model
from app.engine.routes import route
from app.readmodels import exception_ledger as L
from app.readmodels.exception_ledger import Entry, Refused

T0 = 1_717_200_000_000  # 2024-06-01T00:00:00Z
MIN = 60_000
NOW = dt.datetime(2024, 6, 1, 2, 30, tzinfo=dt.UTC)
NOW_MS = int(NOW.timestamp() * 1000)
AVRO_KEY = b"\x00\x00\x00\x00\x07" + bytes([2 * len("opp-1")]) + b"opp-1"  # wire format of {"id": "opp-1"}


def exception_json(exception_id="dlq:crm.public.opportunity/0/7", **over) -> dict:
    value = {
        "exception_id": exception_id,
        "reason_code": "MAPPING_ERROR",
        "exception_type": "MAPPING",
        "severity": "HIGH",
        "correlation_id": "opp-1",
        "amount_at_risk": "1250.50",
        "currency": "EUR",
        "customer_facing": False,
        "owner_team": "integration-platform",
        "sla_minutes": 240,
        "detail": "stage: no mapping for 'Weird'",
        "lineage": {
            "source_topic": "crm.public.opportunity",
            "source_partition": 0,
            "source_offset": 7,
            "schema_id": 3,
            "source_position": "lsn:42",
            "source_ts": None,
        },
        "original_key": base64.b64encode(AVRO_KEY).decode(),
        "original_value": base64.b64encode(b"\x00\x00\x00\x00\x09\xff\xfe").decode(),
        "original_headers": {"traceparent": "00-abc-01"},
        "raised_at": "2024-06-01T00:00:00+00:00",
        "replay_of": None,
        "replay_count": 0,
        "status": "DEAD_LETTERED",
    }
    value.update(over)
    return value


def row(exception=None, status="OPEN", resolution=None, escalation=None) -> bytes:
    return json.dumps(
        {
            "exception": exception if exception is not None else exception_json(),
            "status": status,
            "resolution": resolution,
            "escalation": escalation,
            "updated_at": "2024-06-01T00:05:00+00:00",
        }
    ).encode()


def entry(exception_id="e1", status="OPEN", raised=T0, reason="MAPPING_ERROR", severity="HIGH", **kw) -> Entry:
    return Entry(exception_id, status, reason_code=reason, severity=severity, raised_at_ms=raised, **kw)


# --- parsing ---------------------------------------------------------------------------------


def test_a_row_parses_decimals_base64_bytes_iso_times_and_the_handling_state():
    escalation = {"escalation_id": "esc-1", "route_team": "integration-platform", "channel": "pd", "mode": "PAGE"}
    e = L.parse_entry(b"dlq:crm.public.opportunity/0/7", row(status="OPEN", escalation=escalation))
    assert e.exception_id == "dlq:crm.public.opportunity/0/7" and e.status == "OPEN"
    assert (e.amount_at_risk, e.currency) == (Decimal("1250.50"), "EUR")
    assert e.original_key == AVRO_KEY and e.original_value == b"\x00\x00\x00\x00\x09\xff\xfe"
    assert e.raised_at_ms == T0 and e.sla_minutes == 240 and e.replay_count == 0
    assert e.lineage["source_offset"] == 7 and e.coordinates == "crm.public.opportunity/0/7"
    assert e.escalated and e.escalation == escalation and not e.resolved
    assert e.original_headers == {"traceparent": "00-abc-01"}


def test_the_row_status_wins_over_the_records_own_and_epoch_ms_times_are_accepted():
    e = L.parse_entry(b"k", row(exception_json(raised_at=T0 + 5, status="DEAD_LETTERED"), status="resolved"))
    assert e.status == "RESOLVED" and e.resolved and e.raised_at_ms == T0 + 5


def test_a_row_whose_resolution_arrived_before_its_exception_is_a_resolved_entry_named_by_its_key():
    resolution = {"exception_id": "x1", "resolved_at": "2024-06-01T01:00:00+00:00", "resolved_by": "ana"}
    value = json.dumps({"exception": None, "status": "RESOLVED", "resolution": resolution, "escalation": None})
    e = L.parse_entry(b"x1", value.encode())
    assert (e.exception_id, e.status, e.raised_at_ms, e.original_value) == ("x1", "RESOLVED", None, None)
    assert e.resolution == resolution


def test_values_that_are_not_ledger_rows_are_counted_not_fatal():
    good = row()
    bad_b64 = row(exception_json("e2", original_value="%%% not base64"))
    values = {b"e1": good, b"x": b"{not json", b"y": b'["a list"]', b"z": bad_b64, b"w": b'{"exception": 3}'}
    entries, bad = L.parse_ledger(values)
    assert list(entries) == ["dlq:crm.public.opportunity/0/7"] and bad == 4


def test_changelog_topic_follows_the_app_id_and_the_table_name():
    assert L.changelog_topic("t1.crm-erp-sync") == "t1.crm-erp-sync-exception-ledger-changelog"


# --- filtering -------------------------------------------------------------------------------


def test_select_filters_by_reason_severity_since_and_openness_and_sorts_oldest_first():
    rows = [
        entry("c", raised=T0 + 2 * MIN),
        entry("a", raised=T0),
        entry("b", status="RESOLVED", raised=T0 + MIN),
        entry("d", raised=None),
        entry("e", reason="NO_LINES", severity="MEDIUM", raised=T0 + 3 * MIN),
        entry("f", status="DEAD_LETTERED", raised=T0 + 4 * MIN),
    ]
    ids = lambda xs: [x.exception_id for x in xs]  # noqa: E731
    assert ids(L.select(rows)) == ["a", "b", "c", "e", "f", "d"]  # undated last
    assert ids(L.select(rows, reason="mapping_error")) == ["a", "b", "c", "f", "d"]
    assert ids(L.select(rows, severity="MEDIUM")) == ["e"]
    assert ids(L.select(rows, since_ms=T0 + MIN)) == ["b", "c", "e", "f"]  # inclusive; undated excluded
    assert ids(L.select(rows, open_only=True)) == ["a", "c", "e", "f", "d"]  # dead-lettered is not resolved


# --- rendering -------------------------------------------------------------------------------


def test_table_shows_one_line_per_exception_with_amount_age_and_escalation():
    a = L.parse_entry(b"k", row(escalation={"route_team": "integration-platform", "mode": "PAGE"}))
    b = entry("opp-2:NO_LINES:open", reason="NO_LINES", raised=T0 + 90 * MIN)
    text = L.render_table([a, b], NOW_MS)
    lines = text.splitlines()
    assert lines[0].split() == [
        "id",
        "status",
        "reason",
        "severity",
        "owner",
        "correlation",
        "at",
        "risk",
        "raised",
        "at",
        "age",
        "escalated",
    ]
    assert "dlq:crm.public.opportunity/0/7" in lines[1] and "1,250.50 EUR" in lines[1]
    assert "2024-06-01T00:00:00+00:00" in lines[1] and "2h30m" in lines[1]
    assert lines[1].endswith("yes (integration-platform, PAGE)")
    assert lines[2].endswith("1h00m  no") and "  -  " in lines[2]  # no amount
    assert lines[-1] == "2 exception(s), 2 not resolved"
    assert L.render_table([], NOW_MS) == "no exceptions match\n"


def test_detail_decodes_printable_bytes_as_text_and_the_rest_as_hex_with_an_avro_key_id():
    resolution = {"resolved_at": "2024-06-01T01:00:00+00:00", "resolved_by": "ana", "resolution": "MANUAL"}
    e = L.parse_entry(b"k", row(status="RESOLVED", resolution=resolution))
    text = L.render_detail(e, NOW_MS, raw=True)
    assert f"original key   ({len(AVRO_KEY)} bytes, hex) {AVRO_KEY.hex()} [avro key id: opp-1]" in text
    assert "original value (7 bytes, hex) 0000000009fffe" in text
    assert "  traceparent: 00-abc-01" in text and "  source_position: lsn:42" in text
    assert "  resolved_by: ana" in text and "escalation (none)" in text
    assert "amount at risk 1,250.50 EUR" in text and "(age 2h30m)" in text
    plain = L.parse_entry(b"k", row(exception_json(original_key=base64.b64encode(b"opp-1").decode())))
    assert "original key   (5 bytes, utf-8) opp-1" in L.render_detail(plain, NOW_MS)


def test_payloads_are_withheld_and_masked_unless_raw_is_asked_for():
    """Review item 8: ``exceptions show`` printed a quarantined payload, personal data and all."""
    payload = b"{'email': 'janie.doe@example.com', 'name': 'Janie Doe'}"
    personal = exception_json(
        original_key=base64.b64encode(b"opp-1").decode(),
        original_value=base64.b64encode(payload).decode(),
        original_headers={"x-detail": "contact janie.doe@example.com"},
    )
    e = L.parse_entry(b"k", row(personal))
    for shown in (L.render_detail(e, NOW_MS), json.dumps(e.to_json(NOW_MS))):
        assert "janie.doe" not in shown and "Janie Doe" not in shown and "amFuaWU" not in shown, shown
    withheld = f"original value ({len(payload)} bytes) withheld: it may hold personal data (--raw shows it)"
    assert withheld in L.render_detail(e, NOW_MS)
    assert "original key   (5 bytes, utf-8) opp-1" in L.render_detail(e, NOW_MS)  # ids stay readable
    assert e.to_json(NOW_MS)["original_value_bytes"] == len(payload)
    assert "Janie Doe" in L.render_detail(e, NOW_MS, raw=True)
    assert base64.b64decode(e.to_json(NOW_MS, raw=True)["original_value"]).startswith(b"{'email'")


def test_json_form_keeps_bytes_base64_and_adds_age_and_escalated():
    e = L.parse_entry(b"k", row())
    j = e.to_json(NOW_MS, raw=True)
    assert base64.b64decode(j["original_key"]) == AVRO_KEY and j["amount_at_risk"] == "1250.50"
    assert j["raised_at"] == "2024-06-01T00:00:00+00:00" and j["age_seconds"] == 9000 and j["escalated"] is False
    json.dumps(j)  # serialisable as is


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (AVRO_KEY, "opp-1"),
        (b"\x00\x00\x00\x00\x07\x00", ""),  # empty string id
        (AVRO_KEY + b"x", None),  # trailing bytes: not a single string
        (AVRO_KEY[:-1], None),  # truncated
        (b"\x01" + AVRO_KEY[1:], None),  # not magic byte 0
        (b"opp-1", None),
        (None, None),
    ],
)
def test_avro_string_key(data, expected):
    assert L.avro_string_key(data) == expected


@pytest.mark.parametrize(
    ("ms", "text"), [(None, "-"), (5_000, "5s"), (65_000, "1m05s"), (3_780_000, "1h03m"), (90_000_000, "1d01h")]
)
def test_age(ms, text):
    assert L.age(ms) == text


def test_to_ms_reads_iso_with_or_without_offset_datetimes_and_epoch_ms():
    assert L.to_ms("2024-06-01T00:00:00Z") == T0 == L.to_ms("2024-06-01T00:00:00")
    assert L.to_ms("2024-06-01T02:00:00+02:00") == T0 == L.to_ms(dt.datetime(2024, 6, 1, tzinfo=dt.UTC))
    assert L.to_ms(str(T0)) == T0 == L.to_ms(T0) and L.to_ms(None) is None
    with pytest.raises(ValueError):
        L.to_ms("yesterday")


# --- operator resolution ---------------------------------------------------------------------


def test_resolve_refuses_an_unknown_or_already_resolved_exception():
    done = entry("done", status="RESOLVED", resolution={"resolved_by": "ana", "resolved_at": "2024-06-01T01:00:00Z"})
    entries = {"open": entry("open"), "done": done}
    with pytest.raises(Refused, match="'nope' is not in the exception ledger"):
        L.resolve(entries, "nope", "bob", "fixed", NOW)
    with pytest.raises(Refused, match="already RESOLVED by ana at 2024-06-01T01:00:00Z"):
        L.resolve(entries, "done", "bob", "fixed", NOW)
    with pytest.raises(Refused):
        L.resolve(None, "open", "bob", "fixed", NOW)  # no ledger at all


def test_resolve_gives_a_manual_resolution_and_an_operator_audit_that_fit_their_contracts():
    e = entry("e1", correlation_id="opp-1")
    res, audit = L.resolve({"e1": e}, "e1", "bob", "fixed the mapping by hand", NOW)
    assert (route(res).topic, res.key) == ("sync.exception-resolutions", "e1")
    assert (route(audit).topic, audit.key) == ("sync.audit", "opp-1")  # the correlation id when known
    r = model(route(res).contract).model_validate(res.value)
    assert (r.exception_id, r.resolved_by, str(r.resolution.value), r.resolved_at) == ("e1", "bob", "MANUAL", NOW)
    assert r.note == "fixed the mapping by hand"
    a = model(route(audit).contract).model_validate(audit.value)
    assert (a.action.value, a.actor, a.actor_kind.value, a.subject_id) == (
        "EXCEPTION_RESOLVED",
        "bob",
        "OPERATOR",
        "e1",
    )
    assert a.causation_ids == ["e1"] and a.correlation_id == "opp-1" and "fixed the mapping by hand" in a.detail
    assert a.to_avro()["occurred_at"] == NOW
    _, audit = L.resolve({"e1": entry("e1")}, "e1", "bob", "n", NOW)
    assert audit.key == "e1"  # no correlation id: the subject
