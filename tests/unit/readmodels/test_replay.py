"""Replay selection, filters, headers and closing records, from hand-built dead letters and exception records."""

from __future__ import annotations

import datetime as dt

import pytest

from app.contracts.models import model
from app.engine.routes import route
from app.readmodels import replay as R
from app.readmodels.replay import Candidate, Criteria, Skip

T0 = 1_717_200_000_000  # 2024-06-01T00:00:00Z
NOW = dt.datetime(2024, 6, 1, 3, tzinfo=dt.UTC)
SRC = "p.crm.public.opportunity"
AVRO_KEY = b"\x00\x00\x00\x00\x07" + bytes([2 * len("opp-1")]) + b"opp-1"


def dlq_headers(offset=7, reason="MAPPING_ERROR", at=T0, exception_id=None, **extra) -> list[tuple[str, bytes | None]]:
    hs = [
        ("traceparent", b"00-abc-01"),
        ("x-request-id", b"r-1"),  # an upstream x- header: not the service's, kept
        ("x-reason", reason.encode()),
        ("x-detail", b"stage: no mapping"),
        ("x-source-topic", SRC.encode()),
        ("x-source-partition", b"2"),
        ("x-source-offset", str(offset).encode()),
        ("x-quarantined-at", str(at).encode()),
        ("x-exception-id", (exception_id or f"dlq:{SRC}/2/{offset}").encode()),
    ]
    hs += [(k, v) for k, v in extra.items()]
    return hs


def dead(offset=7, key=b"opp-1", value=b"\x00\x00\x00\x00\x09body", **kw) -> Candidate:
    return R.from_dead_letter(key, value, dlq_headers(offset, **kw), f"p.sync.dead-letter/0/{offset}", T0 - 1)


# --- reading candidates ----------------------------------------------------------------------


def test_a_dead_letter_carries_its_id_reason_source_coordinates_time_and_replay_count():
    c = dead(**{"x-replay-count": b"2", "x-replay-of": b"dlq:old"})
    assert (c.exception_id, c.reason, c.coordinates) == (f"dlq:{SRC}/2/7", "MAPPING_ERROR", f"{SRC}/2/7")
    assert (c.at_ms, c.replay_count, c.key, c.found_at) == (T0, 2, b"opp-1", "p.sync.dead-letter/0/7")


def test_a_dead_letter_without_the_newer_headers_gets_the_workers_id_and_the_message_time():
    hs = [h for h in dlq_headers() if h[0] not in ("x-exception-id", "x-quarantined-at")]
    c = R.from_dead_letter(b"k", b"v", hs, "p.sync.dead-letter/1/3", T0 - 1)
    assert (c.exception_id, c.at_ms, c.replay_count) == (f"dlq:{SRC}/2/7", T0 - 1, 0)
    bare = R.from_dead_letter(b"k", b"v", None, "p.sync.dead-letter/1/3", None)
    assert (bare.exception_id, bare.source_topic, bare.reason) == ("dlq:p.sync.dead-letter/1/3", None, "")


def test_an_exception_record_as_decoded_from_avro_is_a_candidate():
    record = {
        "exception_id": "dlq:x/1/5",
        "reason_code": "AVRO_DECODE_ERROR",
        "correlation_id": "opp-9",
        "lineage": {"source_topic": SRC, "source_partition": 1, "source_offset": 5, "schema_id": None},
        "original_key": b"opp-9",
        "original_value": b"\x00bad",
        "original_headers": {"traceparent": "00-x", "x-replay-count": "1"},
        "raised_at": dt.datetime(2024, 6, 1, tzinfo=dt.UTC),
        "replay_of": "dlq:x/0/1",
        "replay_count": 1,
    }
    c = R.from_exception_record(record, "p.sync.exceptions/3/0")
    assert (c.exception_id, c.reason, c.coordinates, c.at_ms) == ("dlq:x/1/5", "AVRO_DECODE_ERROR", f"{SRC}/1/5", T0)
    assert (c.key, c.value, c.replay_count, c.correlation_id) == (b"opp-9", b"\x00bad", 1, "opp-9")
    assert ("traceparent", b"00-x") in c.headers
    nothing = R.from_exception_record({"exception_id": "v", "lineage": {}, "raised_at": "2024-06-01T00:00:00Z"}, "")
    assert (nothing.value, nothing.source_topic, nothing.at_ms) == (None, None, T0)


# --- filters -----------------------------------------------------------------------------------


def test_criteria_all_apply_and_any_value_within_one_matches():
    c = dead(key=AVRO_KEY)
    assert Criteria().matches(c)
    assert Criteria(reasons=frozenset({"NO_LINES", "mapping_error"})).matches(c)
    assert not Criteria(reasons=frozenset({"NO_LINES"})).matches(c)
    assert Criteria(ids=frozenset({c.exception_id, "other"})).matches(c)
    assert not Criteria(ids=frozenset({"other"})).matches(c)
    assert Criteria(keys=frozenset({"opp-1"})).matches(c)  # the id of an Avro key
    assert Criteria(keys=frozenset({"opp-1"})).matches(dead(key=b"opp-1"))  # a UTF-8 key
    assert not Criteria(keys=frozenset({"opp-2"})).matches(c)
    assert not Criteria(keys=frozenset({"opp-1"})).matches(dead(key=None))
    assert not Criteria(reasons=frozenset({"MAPPING_ERROR"}), keys=frozenset({"opp-2"})).matches(c)


def test_time_window_is_since_inclusive_until_exclusive():
    c = dead(at=T0)
    assert Criteria(since_ms=T0).matches(c) and not Criteria(since_ms=T0 + 1).matches(c)
    assert Criteria(until_ms=T0 + 1).matches(c) and not Criteria(until_ms=T0).matches(c)
    undated = R.from_dead_letter(b"k", b"v", [("x-source-topic", SRC.encode())], "d/0/0", None)
    assert Criteria().matches(undated) and not Criteria(since_ms=0).matches(undated)


# --- selection ---------------------------------------------------------------------------------


def test_select_skips_resolved_valueless_sourceless_and_gone_targets_and_counts_duplicates_once():
    elsewhere = R.from_dead_letter(b"k", b"v", [("x-source-topic", b"p.gone"), ("x-reason", b"X")], "d/0/9", T0)
    sourceless = R.from_dead_letter(b"k", b"v", [("x-reason", b"X")], "d/0/8", T0)
    candidates = [dead(1), dead(2), dead(1), dead(3, value=None), dead(4), sourceless, elsewhere]
    sel = R.select(candidates, Criteria(), resolved={f"dlq:{SRC}/2/2"}, existing_topics={SRC})
    assert [c.source_offset for c in sel.selected] == [1, 4]
    assert [(c.exception_id, why) for c, why in sel.skipped] == [
        (f"dlq:{SRC}/2/2", Skip.RESOLVED),
        (f"dlq:{SRC}/2/3", Skip.NO_VALUE),
        ("dlq:d/0/8", Skip.NO_SOURCE),
        ("dlq:d/0/9", Skip.NO_TARGET),
    ]
    assert sel.duplicates == 1
    assert sel.skipped_by() == {
        "already resolved": 1,
        "no original value": 1,
        "no source topic recorded": 1,
        "source topic does not exist": 1,
    }


def test_select_applies_the_filters_before_skipping_and_without_a_topic_list_trusts_the_source():
    sel = R.select([dead(1), dead(2, reason="NO_LINES")], Criteria(reasons=frozenset({"NO_LINES"})))
    assert [c.source_offset for c in sel.selected] == [2] and sel.skipped == []


# --- headers and records of one replay ---------------------------------------------------------


def test_replay_headers_drop_the_services_own_keep_the_rest_and_link_the_replay():
    c = dead(
        **{
            "x-replay-id": b"old",
            "x-replay-of": b"dlq:older",
            "x-replay-count": b"1",
            "x-replay-operator": b"ana",
            "x-retry-attempt": b"3",
            "x-retry-target": SRC.encode(),
            "x-null": None,
        }
    )
    inj = R.plan(c, "r123", "bob")
    assert (inj.topic, inj.key, inj.value, inj.replay_count) == (SRC, b"opp-1", b"\x00\x00\x00\x00\x09body", 2)
    assert inj.headers == [
        ("traceparent", b"00-abc-01"),
        ("x-request-id", b"r-1"),
        ("x-null", None),
        ("x-replay-id", b"r123"),
        ("x-replay-of", f"dlq:{SRC}/2/7".encode()),
        ("x-replay-operator", b"bob"),
        ("x-replay-count", b"2"),
        ("x-original-coordinates", f"{SRC}/2/7".encode()),
    ]


def test_original_coordinates_are_where_the_input_failed_first():
    c = dead(**{"x-original-coordinates": f"{SRC}/0/1".encode()})
    assert ("x-original-coordinates", f"{SRC}/0/1".encode()) in R.replay_headers(c, "r", "bob")
    assert R.plan(dead(), "r", "bob").headers[-1] == ("x-original-coordinates", f"{SRC}/2/7".encode())


def test_plan_refuses_what_cannot_be_replayed():
    with pytest.raises(ValueError, match="cannot be replayed"):
        R.plan(dead(value=None), "r", "bob")


def test_closing_records_audit_the_replay_and_resolve_the_exception_within_their_contracts():
    inj = R.plan(dead(), "r123", "bob")
    audit, res = R.closing_records(inj, "bob", NOW, correlation_id="opp-1")
    a = model(route(audit).contract).model_validate(audit.value)
    assert (route(audit).topic, audit.key) == ("sync.audit", "opp-1")
    assert (a.action.value, a.actor, a.actor_kind.value, a.occurred_at) == ("REPLAYED", "bob", "OPERATOR", NOW)
    assert (a.subject_id, a.causation_ids, a.topic) == (f"dlq:{SRC}/2/7", [f"dlq:{SRC}/2/7"], SRC)
    assert "r123" in a.detail and SRC in a.detail and a.audit_id == f"audit:dlq:{SRC}/2/7:replayed:r123"
    r = model(route(res).contract).model_validate(res.value)
    assert (route(res).topic, res.key) == ("sync.exception-resolutions", f"dlq:{SRC}/2/7")
    assert (r.resolution.value, r.resolved_by, r.note, r.resolved_at) == ("REPLAYED", "bob", "replayed as r123", NOW)
    audit, _ = R.closing_records(inj, "bob", NOW)
    assert audit.key == f"dlq:{SRC}/2/7" and audit.value["correlation_id"] is None


def test_plan_table_and_summary():
    sel = R.select([dead(1), dead(2), dead(3, value=None)], Criteria())
    plans = [R.plan(c, f"r{i}", "bob") for i, c in enumerate(sel.selected)]
    lines = R.render_plan(plans)
    assert lines[0].split() == ["id", "reason", "source", "key", "target", "replay", "#"]
    assert lines[1].split() == [f"dlq:{SRC}/2/1", "MAPPING_ERROR", f"{SRC}/2/1", "opp-1", SRC, "1"]
    assert R.summary(sel, 2) == "selected 2, replayed 2, skipped 1 (no original value: 1)"
    assert R.summary(sel, 1, limit=1, dry_run=True) == (
        "selected 2, would replay 1, skipped 1 (no original value: 1; 1 left by --max 1)"
    )
    assert R.summary(R.Selection(), 0) == "selected 0, replayed 0, skipped 0"
    assert R.summary(sel, 1, failed=1).startswith("selected 2, replayed 1, skipped 1, failed 1")
