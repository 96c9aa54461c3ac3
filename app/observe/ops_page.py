"""The worker's ``/ops`` page: pipeline status, open exceptions and open drift alerts, as HTML for people.

Pure: plain data in, one HTML string out (no Faust, no I/O), so it is unit-tested without a worker;
``app/engine/web.py`` gathers the rows and calls :func:`render`. Written for someone who does not read
code: plain words, amounts with their currency, ages like "3 min ago", severity, the reason code
explained, the owning team and where an exception goes when it is not resolved in time.

What it never shows: raw table values, original message bytes, or personal data. A row contributes
ids, reason, severity, owner, amount, age and a one-line summary, and the summary is passed through
``mask_text`` (app/domain/masking.py). Every value is HTML-escaped. No JavaScript: the page reloads
itself every :data:`REFRESH_S` seconds.
"""

from __future__ import annotations

import datetime as dt
import html
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import orjson

from app.domain.errors import ReasonCode as R
from app.domain.exceptions.escalation import Route, route_for
from app.domain.masking import mask_text
from app.readmodels.exception_ledger import Entry, LedgerError, money, parse_entry, to_ms

REFRESH_S = 10
MAX_ROWS = 200  # per list; the rest is counted and pointed to the CLI
SUMMARY_CHARS = 240
SEVERITY_ORDER = {"CRITICAL": 0, "HIGH": 1, "MEDIUM": 2, "LOW": 3}

# what every reason code means, for someone who does not know the code (a unit test keeps it complete)
REASON_IN_WORDS: dict[str, str] = {
    R.NULL_VALUE: "A message arrived empty, so there was nothing to process.",
    R.TRUNCATED_FRAME: "A message arrived cut off or damaged and could not be read.",
    R.BAD_MAGIC_BYTE: "A message was not in the agreed format (not written with the schema registry) and could "
    "not be read.",
    R.UNKNOWN_SCHEMA_ID: "A message refers to a data format the schema registry does not know.",
    R.AVRO_DECODE_ERROR: "A message could not be decoded with the data format it names.",
    R.SCHEMA_MISMATCH: "A message's data format does not match what the service expects.",
    R.NOT_A_CDC_EVENT: "A message from the CRM was not a change record the service understands.",
    R.MAPPING_ERROR: "A CRM record could not be translated into the service's fields.",
    R.REGISTRY_UNAVAILABLE: "The schema registry did not answer; the service retries by itself.",
    R.BROKER_METADATA: "Kafka's view of a topic was not ready yet; the service retries by itself.",
    R.NO_LINES: "The won deal has no line items, so no order can be created.",
    R.INVALID_QUANTITY: "A line item has a missing, zero or negative quantity.",
    R.PRICE_OUT_OF_POLICY: "A line item's price is missing or outside the discount policy.",
    R.CLOSE_DATE_OUT_OF_RANGE: "The deal's close date is implausibly far from today (a typo such as year 9999).",
    R.MESSAGE_TOO_LARGE: "A message was too large to forward; it was set aside without its content.",
    R.AMOUNT_MISMATCH: "The deal's amount does not add up to its line items.",
    R.MISSING_CURRENCY: "The deal has no currency.",
    R.UNSUPPORTED_CURRENCY: "The deal's currency is one the ERP does not book.",
    R.MISSING_PAYMENT_TERMS: "Neither the deal nor the account has payment terms.",
    R.MISSING_BILLING_SCHEDULE: "The deal has no billing schedule.",
    R.MISSING_TAX_TREATMENT: "The deal has neither a tax code nor a tax exemption.",
    R.MISSING_BILL_TO: "There is no complete bill-to address (street, city, country).",
    R.MISSING_SHIP_TO: "There is no complete ship-to address (street, city, country).",
    R.PRODUCT_NOT_MAPPED: "A product on the deal has no ERP item code, so the ERP cannot order it.",
    R.UNKNOWN_PRODUCT: "A product on the deal has not reached the service yet; the deal waits for it.",
    R.MISSING_PRICE_BOOK_ENTRY: "A product has no price in the deal's currency yet; the deal waits for it.",
    R.UNKNOWN_ACCOUNT: "The deal's account has not reached the service yet; the deal waits for it.",
    R.CUSTOMER_NOT_LINKED: "The account is not linked to an ERP customer yet; the deal waits for it.",
    R.AWAITING_RESYNC: "The CRM source lost a change of the deal's records (a Salesforce gap or overflow); "
    "the deal waits for their full state, requested on crm.commands.resync.",
    R.ERP_REJECTED: "The ERP refused the sales order.",
    R.TRUNCATE_NOT_APPLIED: "Someone emptied a whole CRM table; the service did not delete anything and reports it.",
    R.UNEXPECTED_ERROR: "Something nobody foresaw went wrong with this message; it was set aside for a person.",
    R.BAD_CONTROL_HEADER: "A message carried a service header the service did not write (a retry or replay forgery).",
    R.QUARANTINE_FAILED: "Setting a message aside failed in full; only where it is and why were recorded.",
}

ALERT_IN_WORDS: dict[str, str] = {
    "MISSING_EVENT": "An expected ERP step (acceptance, shipment, invoice or payment) did not happen in time.",
    "AMOUNT_MISMATCH": "The ERP's amount or currency differs from what the CRM closed or the order says.",
    "LINE_MISMATCH": "Shipped items or quantities differ from the order.",
    "LIFECYCLE_GAP": "ERP steps happened out of order, or for an order the CRM does not have or cancelled.",
    "AGGREGATE_PARITY": "Over a time window, the ERP accepted a different total than the CRM closed as won.",
    "OWNERSHIP_CONFLICT": "One system changed a field the other owns (a CRM edit of the ERP customer number, say).",
    "RENEWAL_MISSING": "A contract term ended and no renewal opportunity is open or won in the CRM.",
    "UNKNOWN": "The CRM and the ERP disagree in a way the service has no name for.",
}

STATUS_IN_WORDS = {
    "OPEN": "Open: needs a person",
    "PARKED": "Waiting for missing data",
    "RETRYING": "Being retried automatically",
    "DEAD_LETTERED": "Set aside (quarantined)",
}


@dataclass(frozen=True, slots=True)
class PipelineStatus:
    """What ``/ready`` computes, plus this worker's share of the tables and its own counters."""

    ready: bool
    assigned_partitions: int
    tables_recovered: bool
    rebalancing: bool
    registry_reachable: bool
    missing_topics: tuple[str, ...] = ()  # catalog topics the broker does not have
    unreadable_source_schemas: tuple[str, ...] = ()  # CDC writer schemas the mappings cannot read
    stuck_partitions: tuple[str, ...] = ()  # input partitions with lag and no progress
    quarantine_blocked: tuple[str, ...] = ()  # partitions waiting on a quarantine the broker refuses
    table_partitions: tuple[int, ...] = ()  # the state tables' partitions this worker holds
    total_table_partitions: int | None = None
    events_processed: int | None = None  # since this worker started
    commands_emitted: int | None = None
    worker: str = ""


@dataclass(frozen=True, slots=True)
class Alert:
    """One open drift alert as the ``open-drift-alerts`` table keeps it (app/agents/live.py writes it)."""

    alert_id: str
    kind: str
    amount: Decimal | None = None
    currency: str | None = None
    opened_ms: int | None = None
    severity: str = ""
    owner: str = ""
    correlation_id: str | None = None
    order_number: str | None = None
    summary: str = ""


def parse_alert(key: bytes, raw: bytes) -> Alert:
    """A row of the ``open-drift-alerts`` table; ValueError when it is not one."""
    row = orjson.loads(raw)
    if not isinstance(row, dict) or not row.get("kind"):
        raise ValueError("not an open drift alert row")
    try:
        amount = None if row.get("amount") in (None, "") else Decimal(str(row["amount"]))
    except InvalidOperation as exc:
        raise ValueError(f"not an amount: {row.get('amount')!r}") from exc
    return Alert(
        alert_id=key.decode("utf-8", "replace"),
        kind=str(row["kind"]),
        amount=amount,
        currency=row.get("currency"),
        opened_ms=to_ms(row.get("opened")),
        severity=str(row.get("severity") or ""),
        owner=str(row.get("owner") or ""),
        correlation_id=row.get("correlation_id"),
        order_number=row.get("order_number"),
        summary=str(row.get("detail") or ""),
    )


def open_exceptions(rows: Iterable[tuple[bytes, bytes]]) -> tuple[list[Entry], int]:
    """The unresolved exceptions among ``exception-ledger`` rows, and how many rows did not parse."""
    out: list[Entry] = []
    bad = 0
    for key, raw in rows:
        try:
            entry = parse_entry(key, raw)
        except LedgerError:
            bad += 1
            continue
        if not entry.resolved and entry.reason_code:  # a resolution seen before its exception is RESOLVED
            out.append(entry)
    return out, bad


def open_alerts(rows: Iterable[tuple[bytes, bytes]]) -> tuple[list[Alert], int]:
    """The ``open-drift-alerts`` rows as alerts, and how many did not parse."""
    out: list[Alert] = []
    bad = 0
    for key, raw in rows:
        try:
            out.append(parse_alert(key, raw))
        except (ValueError, TypeError):
            bad += 1
    return out, bad


# --- words, ages and amounts -----------------------------------------------------------------------


def reason_in_words(code: str) -> str:
    return REASON_IN_WORDS.get(code) or f"Reason code {code or 'unknown'} (no description yet)."


def alert_in_words(kind: str) -> str:
    return ALERT_IN_WORDS.get(kind) or f"Drift of kind {kind or 'unknown'}."


def _span(seconds: float) -> str:
    s = int(max(0, seconds))
    if s < 60:
        return f"{s} s"
    m = s // 60
    if m < 60:
        return f"{m} min"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h} h {m} min" if m else f"{h} h"
    return f"{h // 24} days"


def ago(ms: int | None, now_ms: int) -> str:
    """``3 min ago``, ``2 h 5 min ago``, ``4 days ago``; ``just now`` under 5 s; ``-`` when unknown."""
    if ms is None:
        return "-"
    age_s = (now_ms - ms) / 1000
    return "just now" if age_s < 5 else f"{_span(age_s)} ago"


def deadline(entry: Entry, now_ms: int) -> tuple[str, bool]:
    """When the exception's time to resolve runs out, in words, and whether it already has."""
    if entry.raised_at_ms is None or entry.sla_minutes is None:
        return "-", False
    due_ms = entry.raised_at_ms + entry.sla_minutes * 60_000
    if due_ms <= now_ms:
        return f"overdue by {_span((now_ms - due_ms) / 1000)}", True
    return f"due in {_span((due_ms - now_ms) / 1000)}", False


def amount(value: Decimal | None, currency: str | None) -> str:
    return "-" if value is None else money(value, currency)


def totals(items: Iterable[tuple[Decimal | None, str | None]]) -> str:
    """Amounts summed per currency: ``1,250.00 EUR + 80.00 USD``; ``none`` when there is no amount."""
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for value, currency in items:
        if value is not None:
            sums[currency or "???"] += value
    return " + ".join(money(v, c) for c, v in sorted(sums.items())) if sums else "none"


def _route_of(routes: list[Route], e: Entry) -> Route | None:
    if not routes:
        return None
    fields = {
        "exception_id": e.exception_id,
        "reason_code": e.reason_code,
        "severity": e.severity,
        "exception_type": e.exception_type,
        "customer_facing": e.customer_facing,
        "amount_at_risk": e.amount_at_risk,
        "owner_team": e.owner_team,
    }
    return route_for(routes, fields)


def _severity_key(severity: str) -> int:
    return SEVERITY_ORDER.get(severity.upper(), len(SEVERITY_ORDER))


# --- HTML ------------------------------------------------------------------------------------------


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _summary(text: str, mask: Callable[[str], str]) -> str:
    masked = mask(" ".join(text.split()))
    return masked if len(masked) <= SUMMARY_CHARS else masked[: SUMMARY_CHARS - 1] + "…"


def _badge(severity: str) -> str:
    level = severity.upper() if severity.upper() in SEVERITY_ORDER else "UNKNOWN"
    return f'<span class="sev sev-{level.lower()}">{esc(severity.title() or "Unknown")}</span>'


def _yes_no(value: bool, good: bool = True) -> str:
    ok = value == good
    return f'<span class="{"ok" if ok else "bad"}">{"yes" if value else "no"}</span>'


def _overall(s: PipelineStatus) -> tuple[str, str]:
    if s.ready:
        return "ok", "Running normally"
    if s.rebalancing:
        return "warn", "Rebalancing: partitions are moving between workers"
    problems = []
    if not s.assigned_partitions:
        problems.append("no partitions assigned")
    if not s.tables_recovered:
        problems.append("tables still recovering")
    if not s.registry_reachable:
        problems.append("schema registry not answering")
    if s.missing_topics:
        problems.append(f"{len(s.missing_topics)} catalog topics missing (run crm-erp-sync topics apply)")
    if s.unreadable_source_schemas:
        n = len(s.unreadable_source_schemas)
        problems.append(f"{n} CDC writer schemas unreadable (run crm-erp-sync sources check)")
    if s.stuck_partitions:
        problems.append(f"{len(s.stuck_partitions)} input partitions stalled")
    if s.quarantine_blocked:
        problems.append(f"{len(s.quarantine_blocked)} partitions wait on a refused quarantine")
    return "bad", "Not ready: " + (", ".join(problems) or "see /ready")


def _count(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def _status_section(s: PipelineStatus) -> str:
    tone, headline = _overall(s)
    held = ", ".join(str(p) for p in s.table_partitions) or "none"
    of = f" of {s.total_table_partitions}" if s.total_table_partitions else ""
    rows = [
        ("Topic partitions assigned to this worker", esc(s.assigned_partitions)),
        ("Tables recovered", _yes_no(s.tables_recovered)),
        ("Rebalancing", _yes_no(s.rebalancing, good=False)),
        ("Schema registry reachable", _yes_no(s.registry_reachable)),
        ("Catalog topics missing on the broker", esc(", ".join(s.missing_topics)) or "none"),
        ("CDC writer schemas the mappings cannot read", esc(" | ".join(s.unreadable_source_schemas)) or "none"),
        ("Input partitions stalled (lag, no progress)", esc(" | ".join(s.stuck_partitions)) or "none"),
        ("Partitions waiting on a refused quarantine", esc(" | ".join(s.quarantine_blocked)) or "none"),
        ("Events processed (since this worker started)", esc(_count(s.events_processed))),
        ("Commands emitted (since this worker started)", esc(_count(s.commands_emitted))),
    ]
    cells = "".join(f"<tr><th>{label}</th><td>{value}</td></tr>" for label, value in rows)
    return (
        '<section id="pipeline"><h2>Pipeline status</h2>'
        f'<p class="overall {tone}">{esc(headline)}</p>'
        f'<table class="kv">{cells}</table>'
        f'<p class="note" id="partitions">This worker\'s partitions: {len(s.table_partitions)}{esc(of)} '
        f"(partition {esc(held)}). Each worker holds only its own partitions' exceptions and alerts: "
        "the lists below leave out what other workers hold. <code>crm-erp-sync exceptions list --open</code> "
        "shows the whole exception ledger.</p></section>"
    )


def _summary_cards(exceptions: list[Entry], alerts: list[Alert], now_ms: int) -> str:
    past_sla = sum(1 for e in exceptions if deadline(e, now_ms)[1])
    cards = [
        ("Open exceptions", f"{len(exceptions):,}", f"{past_sla:,} past their deadline"),
        ("Open drift alerts", f"{len(alerts):,}", "CRM and ERP disagree"),
        ("At risk in exceptions", totals((e.amount_at_risk, e.currency) for e in exceptions), "deal amounts"),
        ("At risk in drift alerts", totals((a.amount, a.currency) for a in alerts), "the disagreeing amounts"),
    ]
    inner = "".join(
        f'<div class="card"><div class="label">{esc(label)}</div><div class="big">{esc(value)}</div>'
        f'<div class="small">{esc(sub)}</div></div>'
        for label, value, sub in cards
    )
    return f'<section id="summary" class="cards">{inner}</section>'


def _list_table(columns: Iterable[str], rows: list[str]) -> str:
    header = "".join(f"<th>{esc(c)}</th>" for c in columns)
    return f"<table class='list'><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _owner_cell(e: Entry, routes: list[Route]) -> str:
    owner = f"<span class='nowrap'>{esc(e.owner_team or '-')}</span>"
    if e.escalation:
        team, mode, channel = (e.escalation.get(k) for k in ("route_team", "mode", "channel"))
        return f"{owner}<div class='small escalated'>escalated to {esc(team)} ({esc(mode)}) on {esc(channel)}</div>"
    route = _route_of(routes, e)
    if route is None:
        return owner
    how = "paged" if route.mode == "PAGE" else "ticket"
    return f"{owner}<div class='small'>if late: {esc(route.team)} ({how}) on {esc(route.channel)}</div>"


def _exceptions_section(
    exceptions: list[Entry] | None, routes: list[Route], now_ms: int, mask: Callable[[str], str]
) -> str:
    head = '<section id="exceptions"><h2>Open exceptions</h2>'
    if exceptions is None:
        return head + '<p class="empty">Not available while the worker rebalances or recovers its tables.</p></section>'
    if not exceptions:
        return head + '<p class="empty">No open exceptions on this worker\'s partitions.</p></section>'
    ordered = sorted(exceptions, key=lambda e: (_severity_key(e.severity), e.raised_at_ms or now_ms, e.exception_id))
    rows = []
    for e in ordered[:MAX_ROWS]:
        due, late = deadline(e, now_ms)
        rows.append(
            "<tr>"
            f"<td>{_badge(e.severity)}</td>"
            f"<td><div class='reason'>{esc(reason_in_words(e.reason_code))}</div>"
            f"<div class='small'><code>{esc(e.reason_code)}</code></div></td>"
            f"<td><div>{esc(e.correlation_id or '-')}</div><div class='small id'>{esc(e.exception_id)}</div></td>"
            f"<td>{esc(STATUS_IN_WORDS.get(e.status, e.status.title()))}</td>"
            f"<td>{_owner_cell(e, routes)}</td>"
            f"<td class='num'>{esc(amount(e.amount_at_risk, e.currency))}</td>"
            f"<td>{esc(ago(e.raised_at_ms, now_ms))}</td>"
            f"<td class='{'late' if late else ''}'>{esc(due)}</td>"
            f"<td class='summary'>{esc(_summary(e.detail, mask))}</td>"
            "</tr>"
        )
    more = len(ordered) - MAX_ROWS
    tail = (
        f"<p class='note'>{more:,} more not shown: <code>crm-erp-sync exceptions list --open</code>.</p>"
        if more > 0
        else ""
    )
    columns = ("Severity", "What happened", "Deal / id", "State", "Owner", "At risk", "Raised", "Deadline", "Summary")
    return head + _list_table(columns, rows) + tail + "</section>"


def _alerts_section(alerts: list[Alert] | None, now_ms: int, mask: Callable[[str], str]) -> str:
    head = '<section id="alerts"><h2>Open drift alerts</h2>'
    if alerts is None:
        return head + '<p class="empty">Not available while the worker rebalances or recovers its tables.</p></section>'
    if not alerts:
        return head + '<p class="empty">No open drift alerts on this worker\'s partitions.</p></section>'
    ordered = sorted(
        alerts, key=lambda a: (_severity_key(a.severity), -(a.amount or 0), a.opened_ms or now_ms, a.alert_id)
    )
    rows = []
    for a in ordered[:MAX_ROWS]:
        deal = a.correlation_id or "-"
        order = f"order {a.order_number}" if a.order_number else ""
        rows.append(
            "<tr>"
            f"<td>{_badge(a.severity)}</td>"
            f"<td><div class='reason'>{esc(alert_in_words(a.kind))}</div>"
            f"<div class='small'><code>{esc(a.kind)}</code></div></td>"
            f"<td><div>{esc(deal)}</div><div class='small'>{esc(order)}</div>"
            f"<div class='small id'>{esc(a.alert_id)}</div></td>"
            f"<td class='nowrap'>{esc(a.owner or '-')}</td>"
            f"<td class='num'>{esc(amount(a.amount, a.currency))}</td>"
            f"<td>{esc(ago(a.opened_ms, now_ms))}</td>"
            f"<td class='summary'>{esc(_summary(a.summary, mask))}</td>"
            "</tr>"
        )
    more = len(ordered) - MAX_ROWS
    tail = f"<p class='note'>{more:,} more not shown.</p>" if more > 0 else ""
    columns = ("Severity", "What is wrong", "Deal / order", "Owner", "At risk", "Opened", "Summary")
    return head + _list_table(columns, rows) + tail + "</section>"


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f5f6f8;color:#1d2330}
header{background:#1d2330;color:#fff;padding:14px 24px}header h1{margin:0;font-size:20px}
header .small{color:#c8ccd6}main{padding:16px 24px;max-width:1400px}
h2{font-size:17px;margin:22px 0 8px}section{margin-bottom:8px}
.overall{display:inline-block;padding:6px 12px;border-radius:6px;font-weight:600;margin:4px 0 10px}
.overall.ok{background:#dff3e4;color:#14532d}.overall.warn{background:#fff3cd;color:#7a4b00}
.overall.bad{background:#fde2e1;color:#8a1c14}
table{border-collapse:collapse;background:#fff;box-shadow:0 1px 2px rgba(0,0,0,.08)}
th,td{padding:7px 10px;border-bottom:1px solid #e4e7ec;text-align:left;vertical-align:top;font-size:14px}
table.kv th{font-weight:500;color:#4b5565;width:330px}table.list{width:100%}
table.list thead th{background:#eef0f4;font-size:13px;color:#4b5565}
.ok{color:#15803d;font-weight:600}.bad{color:#b42318;font-weight:600}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin-top:18px}
.card{background:#fff;border-radius:8px;padding:12px 16px;min-width:220px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.card .label{font-size:13px;color:#4b5565}.card .big{font-size:22px;font-weight:650;margin:4px 0}
.small{font-size:12px;color:#5f6b7c}.id{word-break:break-all}.num{text-align:right;white-space:nowrap}
.sev{display:inline-block;padding:2px 8px;border-radius:10px;font-size:12px;font-weight:600}
.sev-critical{background:#7a1010;color:#fff}.sev-high{background:#fde2e1;color:#8a1c14}
.sev-medium{background:#fff3cd;color:#7a4b00}.sev-low{background:#e6effa;color:#1e4d8c}
.sev-unknown{background:#e4e7ec;color:#333}.late{color:#b42318;font-weight:600}
.summary{max-width:380px;color:#333}.nowrap{white-space:nowrap}.reason{font-weight:500}.escalated{color:#b42318}
.note{font-size:13px;color:#4b5565;max-width:1000px}.empty{color:#4b5565;font-style:italic}
code{font-size:12px;background:#eef0f4;padding:1px 4px;border-radius:3px}
"""


def render(
    status: PipelineStatus,
    exceptions: list[Entry] | None,
    alerts: list[Alert] | None,
    now: dt.datetime,
    routes: list[Route] | None = None,
    unreadable: int = 0,
    mask: Callable[[str], str] = mask_text,
) -> str:
    """The whole page. ``exceptions``/``alerts`` are None when the tables cannot be read right now."""
    now_ms = int(now.timestamp() * 1000)
    stamp = now.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    worker = f" · worker {status.worker}" if status.worker else ""
    bad = (
        f"<p class='note bad'>{unreadable:,} table row(s) could not be read and are not shown.</p>"
        if unreadable
        else ""
    )
    body = "".join(
        [
            _status_section(status),
            _summary_cards(exceptions or [], alerts or [], now_ms),
            _exceptions_section(exceptions, routes or [], now_ms, mask),
            _alerts_section(alerts, now_ms, mask),
            bad,
        ]
    )
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{REFRESH_S}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>CRM-ERP sync: operations</title>"
        f"<style>{CSS}</style></head><body>"
        "<header><h1>CRM-ERP sync: operations</h1>"
        f"<div class='small'>As of {esc(stamp)}{esc(worker)} · refreshes every {REFRESH_S} s</div></header>"
        f"<main>{body}</main></body></html>\n"
    )
