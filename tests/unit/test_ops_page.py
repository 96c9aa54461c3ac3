"""The ``/ops`` page renderer without a worker: words, amounts, ages, escaping, empty states, masking."""

from __future__ import annotations

import datetime as dt
import html as htmllib
import re
from decimal import Decimal

import orjson
import pytest

from app import cli
from app.domain.errors import ReasonCode
from app.domain.exceptions import escalation
from app.domain.parity.rules import DriftKind
from app.observe import ops_page
from app.observe.ops_page import Alert, PipelineStatus
from app.ops.screenshot import ScreenshotError, find_chromium
from app.settings import REPO_ROOT

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
READY = PipelineStatus(
    ready=True,
    assigned_partitions=23,
    tables_recovered=True,
    rebalancing=False,
    registry_reachable=True,
    table_partitions=(1, 3),
    total_table_partitions=4,
    events_processed=1234,
    commands_emitted=56,
)
ROUTES = escalation.load(REPO_ROOT / "app" / "rules" / "escalation.toml")


def ledger_row(exception_id: str, reason: str = "ERP_REJECTED", minutes_ago: int = 3, **fields) -> tuple[bytes, bytes]:
    exception = {
        "exception_id": exception_id,
        "reason_code": reason,
        "exception_type": "ERP_REJECTION",
        "severity": "HIGH",
        "correlation_id": "opp-1",
        "amount_at_risk": "1250.00",
        "currency": "EUR",
        "customer_facing": True,
        "owner_team": "order-management",
        "sla_minutes": 240,
        "detail": "ERP CREDIT_LIMIT: over the limit",
        "lineage": {"source_topic": "erp.events.sales-order", "source_partition": 0, "source_offset": 9},
        "original_key": None,
        "original_value": None,
        "original_headers": {},
        "raised_at": (NOW - dt.timedelta(minutes=minutes_ago)).isoformat(),
        "status": "OPEN",
    } | fields
    row = {"exception": exception, "status": exception["status"], "resolution": None, "escalation": None}
    return exception_id.encode(), orjson.dumps(row)


def alert_row(alert_id: str, **fields) -> tuple[bytes, bytes]:
    row = {
        "kind": "AMOUNT_MISMATCH",
        "amount": "10.00",
        "currency": "EUR",
        "opened": (NOW - dt.timedelta(hours=2, minutes=5)).isoformat(),
        "severity": "HIGH",
        "owner": "deal-desk",
        "correlation_id": "opp-2",
        "order_number": "SO-2",
        "detail": "closed-won amount and ERP order amount differ",
    } | fields
    return alert_id.encode(), orjson.dumps(row)


def page(exception_rows=(), alert_rows=(), status: PipelineStatus = READY) -> str:
    exceptions, bad_e = ops_page.open_exceptions(exception_rows)
    alerts, bad_a = ops_page.open_alerts(alert_rows)
    return ops_page.render(status, exceptions, alerts, NOW, ROUTES, bad_e + bad_a)


def words(page_html: str) -> str:
    """The page as a person reads it: tags dropped, entities decoded, spaces collapsed."""
    return " ".join(htmllib.unescape(re.sub(r"<[^>]+>", " ", page_html)).split())


def test_every_reason_code_and_drift_kind_is_explained_in_words():
    assert set(ReasonCode) <= set(ops_page.REASON_IN_WORDS)
    assert {str(k) for k in DriftKind} <= set(ops_page.ALERT_IN_WORDS)


def test_an_open_exception_shows_its_reason_in_words_amount_age_owner_and_route():
    html = page([ledger_row("opp-1:ERP_REJECTED:evt-1")])
    assert "The ERP refused the sales order." in html and "<code>ERP_REJECTED</code>" in html
    assert "1,250.00 EUR" in html and "3 min ago" in html and "due in 3 h 57 min" in html
    assert "order-management" in html and "if late: order-management (ticket) on #order-management" in html
    assert 'Open exceptions</div><div class="big">1</div>' in html
    assert "Open: needs a person" in html and "opp-1:ERP_REJECTED:evt-1" in html


def test_past_its_deadline_an_exception_says_overdue_and_a_big_deal_pages_revops():
    html = page([ledger_row("e1", minutes_ago=300, amount_at_risk="75000.00", exception_type="DATA_VALIDATION")])
    assert "overdue by 1 h" in html and "0 past their deadline" not in html and "1 past their deadline" in html
    assert "if late: revops (paged) on #revops-escalations" in html


def test_an_escalated_exception_names_where_it_went():
    key, raw = ledger_row("e1", minutes_ago=300)
    row = orjson.loads(raw) | {"escalation": {"route_team": "order-management", "mode": "TICKET", "channel": "#om"}}
    assert "escalated to order-management (TICKET) on #om" in page([(key, orjson.dumps(row))])


def test_an_open_alert_shows_its_kind_in_words_amount_currency_owner_and_age():
    html = page(alert_rows=[alert_row("opp-2:amount:accepted:1")])
    assert "The ERP's amount or currency differs" in words(html) and "<code>AMOUNT_MISMATCH</code>" in html
    assert "10.00 EUR" in html and "2 h 5 min ago" in html and "deal-desk" in html and "order SO-2" in html
    assert 'At risk in drift alerts</div><div class="big">10.00 EUR' in html


def test_alert_rows_written_before_the_page_existed_still_render():
    key, _ = alert_row("opp-3:missing:accepted:1")
    old = orjson.dumps({"kind": "MISSING_EVENT", "amount": "250.00", "currency": "EUR", "opened": NOW.isoformat()})
    html = page(alert_rows=[(key, old)])
    assert "did not happen in time" in html and "250.00 EUR" in html and "just now" in html
    assert ">Unknown</span>" in html  # no severity recorded


def test_resolved_exceptions_are_left_out_and_unreadable_rows_are_counted():
    key, raw = ledger_row("e-done")
    resolved = orjson.dumps(orjson.loads(raw) | {"status": "RESOLVED"})
    html = page([(key, resolved), (b"junk", b"not json")], [(b"a-junk", b"{}")])
    assert "e-done" not in html and "No open exceptions on this worker's partitions." in words(html)
    assert "No open drift alerts" in html and "2 table row(s) could not be read" in html


def test_empty_state_and_tables_not_readable_yet():
    html = page()
    assert "No open exceptions" in html and "No open drift alerts" in html and "none" in html
    waiting = ops_page.render(READY, None, None, NOW)
    assert waiting.count("Not available while the worker rebalances or recovers its tables.") == 2


def test_pipeline_status_partitions_and_counters():
    html = page()
    assert "Running normally" in html and "This worker's partitions: 2 of 4 (partition 1, 3)" in words(html)
    assert "1,234" in html and ">56<" in html and '<meta http-equiv="refresh" content="10">' in html
    down = PipelineStatus(
        ready=False, assigned_partitions=0, tables_recovered=False, rebalancing=False, registry_reachable=False
    )
    assert "Not ready: no partitions assigned, tables still recovering, schema registry not answering" in page(
        status=down
    )
    moving = PipelineStatus(
        ready=False, assigned_partitions=4, tables_recovered=True, rebalancing=True, registry_reachable=True
    )
    assert "Rebalancing: partitions are moving between workers" in page(status=moving)
    topics = ("p.sync.escalations", "p.sync.audit")
    missing = PipelineStatus(
        ready=False, assigned_partitions=4, tables_recovered=True, rebalancing=False, registry_reachable=True,
        missing_topics=topics,
    )  # fmt: skip
    html = words(page(status=missing))
    assert "Not ready: 2 catalog topics missing (run crm-erp-sync topics apply)" in html
    assert "Catalog topics missing on the broker p.sync.escalations, p.sync.audit" in html
    assert "Catalog topics missing on the broker none" in words(page())


def test_everything_is_escaped_and_there_is_no_script():
    evil = '<script>alert("x")</script>'
    html = page(
        [ledger_row(f"id-{evil}", reason=evil, detail=evil, correlation_id=evil, owner_team=evil, currency=evil)],
        [alert_row(f"a-{evil}", kind=evil, detail=evil, owner=evil, order_number=evil, severity=evil)],
    )
    assert "<script" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html


def test_summaries_are_masked():
    detail = "decode failed for {'name': 'ACME GmbH', 'email': 'erika.mustermann@acme.example'} call +49 30 1234567"
    html = page(
        [ledger_row("e1", detail=detail)],
        [alert_row("a1", detail="contact erika.mustermann@acme.example")],
    )
    assert "ACME GmbH" not in html and "erika.mustermann" not in html and "1234567" not in html
    assert "e***@acme.example" in html


def test_long_summaries_are_shortened():
    html = page([ledger_row("e1", detail="x" * 5000)])
    assert "x" * ops_page.SUMMARY_CHARS not in html and "x" * (ops_page.SUMMARY_CHARS - 1) + "…" in html


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(2, "just now"), (45, "45 s ago"), (180, "3 min ago"), (7500, "2 h 5 min ago"), (3 * 86400, "3 days ago")],
)
def test_ages_read_like_a_person_says_them(seconds, words):
    now_ms = int(NOW.timestamp() * 1000)
    assert ops_page.ago(now_ms - seconds * 1000, now_ms) == words


def test_totals_sum_per_currency():
    items = [(Decimal("1000"), "EUR"), (Decimal("250.5"), "EUR"), (Decimal("80"), "USD"), (None, "GBP")]
    assert ops_page.totals(items) == "1,250.50 EUR + 80.00 USD"
    assert ops_page.totals([]) == "none"


def test_parse_alert_reads_an_open_alert_row():
    key, raw = alert_row("opp-2:amount:accepted:1")
    a = ops_page.parse_alert(key, raw)
    assert a == Alert(
        alert_id="opp-2:amount:accepted:1",
        kind="AMOUNT_MISMATCH",
        amount=Decimal("10.00"),
        currency="EUR",
        opened_ms=int((NOW - dt.timedelta(hours=2, minutes=5)).timestamp() * 1000),
        severity="HIGH",
        owner="deal-desk",
        correlation_id="opp-2",
        order_number="SO-2",
        summary="closed-won amount and ERP order amount differ",
    )


def test_the_screenshot_command_is_wired_and_says_when_there_is_no_browser(capsys):
    args = cli.build_parser().parse_args(["ops-screenshot", "--url", "http://127.0.0.1:1/ops", "--out", "x.png"])
    assert (args.url, args.out, args.func) == ("http://127.0.0.1:1/ops", "x.png", cli._ops_screenshot)
    with pytest.raises(ScreenshotError, match="no browser"):
        find_chromium("/nonexistent/chromium")
    assert cli.main(["ops-screenshot", "--chromium", "/nonexistent/chromium", "--out", "/tmp/never.png"]) == 1
    assert "no browser at '/nonexistent/chromium'" in capsys.readouterr().err


def test_stalled_partitions_and_a_blocked_quarantine_make_the_page_say_not_ready_and_why():
    status = ops_page.PipelineStatus(
        ready=False, assigned_partitions=4, tables_recovered=True, rebalancing=False, registry_reachable=True,
        stuck_partitions=("crm.public.opportunity/2: lag 90, no progress for 130 s",),
        quarantine_blocked=("crm.public.account/0/7: ProducerSendError: topic authorization failed",),
    )  # fmt: skip
    page = ops_page.render(status, [], [], NOW, [], 0)
    assert "1 input partitions stalled" in page and "1 partitions wait on a refused quarantine" in page
    assert "crm.public.opportunity/2: lag 90, no progress for 130 s" in page
