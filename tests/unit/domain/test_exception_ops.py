"""Retry steps, quarantine context, escalation routing and the exception ledger's transitions."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from app.contracts.models import model
from app.domain import escalation, exception_state, retries
from app.settings import REPO_ROOT

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
TIERS = retries.parse_tiers("10s=10,1m=60,10m=600")
COORDS = retries.Coordinates("crm.public.opportunity", 2, 41)


def test_a_message_climbs_the_tiers_keeping_its_headers_and_its_first_target():
    headers = [("traceparent", b"00-abc")]
    tier, headers = retries.next_step(headers, TIERS, "crm.public.opportunity", 1000.0)
    assert tier == "10s" and retries.header(headers, "x-retry-due-ms") == "1010000"
    tier, headers = retries.next_step(headers, TIERS, "sync.retry.10s", 2000.0)
    assert tier == "1m" and retries.header(headers, "x-retry-target") == "crm.public.opportunity"
    tier, headers = retries.next_step(headers, TIERS, "crm.public.opportunity", 3000.0)
    assert (tier, retries.header(headers, "x-retry-attempt")) == ("10m", "3")
    assert retries.next_step(headers, TIERS, "crm.public.opportunity", 4000.0) is None
    assert ("traceparent", b"00-abc") in headers


def test_a_bad_tier_spec_is_refused():
    with pytest.raises(ValueError, match="<topic suffix>=<seconds>"):
        retries.parse_tiers("10s")


def test_a_quarantined_message_carries_its_bytes_coordinates_classification_and_replay_history():
    headers = [("x-replay-of", b"dlq:crm.public.opportunity/2/7"), ("x-replay-count", b"1")]
    record = retries.exception_record(
        COORDS, "MAPPING_ERROR", "opportunity.stage: 'Won!'", b"k", b"\x00v", headers, "opp-1", NOW
    )
    model("io.crmerpsync.sync.ExceptionRecord").model_validate(record)
    assert record["exception_id"] == "dlq:crm.public.opportunity/2/41"
    assert (record["exception_type"], record["status"], record["owner_team"]) == (
        "MAPPING",
        "DEAD_LETTERED",
        "integration-platform",
    )
    assert (record["replay_of"], record["replay_count"]) == ("dlq:crm.public.opportunity/2/7", 1)
    dead = retries.dead_letter_headers(headers, COORDS, "MAPPING_ERROR", "d", record["exception_id"], NOW)
    assert retries.header(dead, "x-original-coordinates") == COORDS.label
    assert retries.header(dead, "x-exception-id") == record["exception_id"]


ROUTES = escalation.load(REPO_ROOT / "app" / "rules" / "escalation.toml")


def exception(**overrides) -> dict:
    base = {
        "exception_id": "opp-1:NO_LINES:lsn:5",
        "reason_code": "NO_LINES",
        "exception_type": "DATA_VALIDATION",
        "severity": "HIGH",
        "correlation_id": "opp-1",
        "amount_at_risk": "250.00",
        "currency": "EUR",
        "customer_facing": True,
        "owner_team": "sales-ops",
        "sla_minutes": 240,
        "detail": "no lines",
        "raised_at": (NOW - dt.timedelta(hours=5)).isoformat(),
        "status": "OPEN",
    }
    return {**base, **overrides}


@pytest.mark.parametrize(
    ("overrides", "route"),
    [
        ({}, ("sales-ops", "#sales-ops", "TICKET")),
        ({"amount_at_risk": "75000.00"}, ("revops", "#revops-escalations", "PAGE")),
        ({"reason_code": "TRUNCATE_NOT_APPLIED"}, ("crm-platform", "#crm-platform-oncall", "PAGE")),
        ({"exception_type": "POISON_INPUT"}, ("integration-platform", "#crm-erp-sync-oncall", "PAGE")),
    ],
)
def test_routes_are_chosen_first_match_wins(overrides, route):
    r = escalation.route_for(ROUTES, exception(**overrides))
    assert (r.team, r.channel, r.mode) == route


def test_a_rules_file_without_a_catch_all_is_refused(tmp_path: Path):
    rules = tmp_path / "rules.toml"
    rules.write_text('[[route]]\nmatch = { severity = ["HIGH"] }\nteam = "t"\nchannel = "#t"\nmode = "PAGE"\n')
    with pytest.raises(ValueError, match="must match everything"):
        escalation.load(rules)


def test_the_ledger_escalates_an_overdue_exception_once_and_not_a_resolved_one():
    row, audit = exception_state.on_exception(None, exception(), NOW)
    assert row["status"] == "OPEN" and audit[0].value["action"] == "EXCEPTION_RAISED"
    row, outs = exception_state.on_check(row, ROUTES, NOW)
    esc = outs[0].value
    model("io.crmerpsync.sync.Escalation").model_validate(esc)
    assert (esc["route_team"], esc["overdue_minutes"]) == ("sales-ops", 60)
    assert exception_state.on_check(row, ROUTES, NOW)[1] == []  # once
    fresh, _ = exception_state.on_exception(None, exception(exception_id="x"), NOW)
    resolved, _ = exception_state.on_resolution(
        fresh, {"exception_id": "x", "resolved_by": "alice", "resolution": "MANUAL", "note": "fixed"}, NOW
    )
    assert exception_state.on_check(resolved, ROUTES, NOW)[1] == [] and resolved["status"] == "RESOLVED"


def test_a_resolution_seen_before_its_exception_keeps_the_row_resolved():
    resolution = {"exception_id": "y", "resolved_by": "crm-erp-sync", "resolution": "SUPERSEDED", "note": None}
    row, audit = exception_state.on_resolution(None, resolution, NOW)
    assert audit[0].value["action"] == "EXCEPTION_RESOLVED"
    row, _ = exception_state.on_exception(row, exception(exception_id="y"), NOW)
    assert row["status"] == "RESOLVED" and row["exception"]["exception_id"] == "y"
    assert exception_state.escalation_due_ms(row) is None


def test_a_message_too_large_to_copy_keeps_only_its_key_and_its_coordinates():
    assert retries.within_limit(b"k", b"v" * 10, 100) == (b"k", b"v" * 10, None)
    assert retries.within_limit(b"k", b"v" * 200, 100) == (b"k", None, 201)
    assert retries.within_limit(b"k" * 60, b"v" * 60, 100) == (None, None, 120)  # a huge key goes too
