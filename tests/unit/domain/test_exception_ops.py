"""Retry steps, quarantine context, escalation routing and the exception ledger's transitions."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from app.contracts.models import model
from app.domain.errors import ReasonCode, SyncError
from app.domain.exceptions import escalation, retries
from app.domain.exceptions import state as exception_state
from app.settings import REPO_ROOT

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
TIERS = retries.parse_tiers("10s=10,1m=60,10m=600")
COORDS = retries.Coordinates("crm.public.opportunity", 2, 41)


def test_a_message_climbs_the_tiers_keeping_its_headers_and_returning_where_it_failed():
    headers = [("traceparent", b"00-abc")]
    tier, headers = retries.next_step(headers, TIERS, "crm.public.opportunity", 1000.0)
    assert tier == "10s" and retries.header(headers, "x-retry-due-ms") == "1010000"
    tier, headers = retries.next_step(headers, TIERS, "crm.public.opportunity", 2000.0)
    assert tier == "1m" and retries.header(headers, "x-retry-target") == "crm.public.opportunity"
    tier, headers = retries.next_step(headers, TIERS, "crm.public.opportunity", 3000.0)
    assert (tier, retries.header(headers, "x-retry-attempt")) == ("10m", "3")
    assert retries.next_step(headers, TIERS, "crm.public.opportunity", 4000.0) is None
    assert ("traceparent", b"00-abc") in headers


def test_control_headers_on_input_are_parsed_defensively_and_never_pick_the_retry_target():
    """Review item 1: ``x-replay-count: abc`` made the quarantine path raise (input lost), and an
    ``x-retry-target`` on a CDC message decided where the service would write it."""
    forged = [("x-replay-count", b"abc"), ("x-retry-attempt", b"-1"), ("x-retry-target", b"erp.commands.sales-order"),
              ("x-retry-target-catalog", b"erp.commands.customer")]  # fmt: skip
    record = retries.exception_record(COORDS, "MAPPING_ERROR", "x", b"k", b"v", forged, None, NOW)
    assert record["replay_count"] == 0
    tier, headers = retries.next_step(forged, TIERS, "crm.public.opportunity", 1000.0)
    assert tier == "10s" and retries.header(headers, "x-retry-attempt") == "1"
    assert retries.header(headers, "x-retry-target") == "crm.public.opportunity"
    assert retries.header(headers, "x-retry-target-catalog") is None
    consumed = frozenset({"crm.public.opportunity"})
    resendable = {"erp.commands.sales-order": "p.erp.commands.sales-order"}
    assert retries.retry_target(headers, consumed, resendable) == "crm.public.opportunity"
    with pytest.raises(SyncError) as err:
        retries.retry_target(forged, consumed, resendable)
    assert err.value.reason is ReasonCode.BAD_CONTROL_HEADER
    with pytest.raises(SyncError):
        retries.retry_target([("x-retry-target-catalog", b"erp.commands.customer")], consumed, resendable)
    command = [("x-retry-target-catalog", b"erp.commands.sales-order")]
    assert retries.retry_target(command, consumed, resendable) == "p.erp.commands.sales-order"


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


def test_every_copy_is_sized_with_its_headers_and_the_ledgers_base64_before_it_is_sent():
    """Review item 4: a 900 KB value with 120 KB of headers passed the old check and its copies were
    refused by the broker for ever."""
    limit = 1024 * 1024
    small = retries.copy_plan(b"k", b"v" * 10, [("h", b"x")], limit)
    assert (small.key, small.value, small.dropped_bytes, small.dropped_header_bytes) == (b"k", b"v" * 10, None, None)
    headers = [(f"h{i}", b"x" * 1000) for i in range(120)]  # 120 KB: kept, and counted
    plan = retries.copy_plan(b"opp-1", b"v" * 900_000, headers, limit)
    assert plan.headers == headers and plan.dropped_header_bytes is None
    assert plan.value is None and plan.key == b"opp-1" and plan.dropped_bytes == 900_005
    assert retries.copy_plan(b"k", b"v" * 700_000, headers, limit).value is None  # fits only without the headers
    more = [(f"h{i}", b"x" * 1000) for i in range(200)]  # over an eighth of the limit: left at the source
    plan = retries.copy_plan(b"k", b"v" * 10, more, limit)
    assert plan.headers == [] and plan.dropped_header_bytes == retries.headers_size(more) and plan.value is not None
    fits = retries.copy_plan(b"k", b"v" * 700_000, [], limit)  # 700 KB base64 is 933 KB: still under 1 MiB
    assert fits.value is not None
    too_big = retries.copy_plan(b"k", b"v" * 790_000, [], limit)  # base64: 1.05 MB, over the limit
    assert too_big.value is None and too_big.dropped_bytes == 790_001
    huge_key = retries.copy_plan(b"k" * 300_000, b"v" * 600_000, [], limit)
    assert (huge_key.key, huge_key.value) == (None, None)
