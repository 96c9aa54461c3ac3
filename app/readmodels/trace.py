"""Trace: one deal's history across the service's topics, in time order, for audits.

Pure: the records arrive already read and decoded (``app/ops/trace.py`` does the Kafka part). This
module decides which records belong to the deal, turns each into one timeline entry (timestamp,
source topic, kind, short summary, ids) and renders the timeline as text or JSON-ready dicts.

A record belongs to deal ``opp`` when:

* ``sync.deal-changes``, ``erp.events.sales-order``, ``erp.events.milestone``, ``erp.commands.sales-order``,
  ``crm.commands.update``: its key is ``opp``;
* ``sync.dead-letter``: its key (the original key, decoded from Avro for CDC keys) is ``opp`` or
  the id of a CRM row the deal's CDC changes touched (its line items);
* ``sync.exceptions``: its key is ``opp``, an id of the deal (``opp:…``) or the source coordinates
  of one of the deal's dead letters, or its value says ``correlation_id == opp`` or carries the
  ``x-exception-id`` of one of them; the exception ids seen this way are the *deal's exceptions*;
* ``sync.exception-resolutions``, ``sync.escalations``: its key is one of the deal's exceptions
  or starts with ``opp:``;
* ``sync.drift-alerts``: its key (the alert id) starts with ``opp:`` (aggregate parity alerts,
  ``parity:…``, belong to no deal);
* ``sync.audit``: its key is ``opp``, an id of the deal, or one of its exceptions.

Ties within one millisecond are broken by the direction data flows through the service (ERP input,
deal changes, exceptions, commands, alerts, audit), then by partition and offset.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

DEAL_CHANGES = "sync.deal-changes"
ERP_EVENTS = "erp.events.sales-order"
ERP_MILESTONES = "erp.events.milestone"
ERP_COMMANDS = "erp.commands.sales-order"
CRM_UPDATES = "crm.commands.update"
EXCEPTIONS = "sync.exceptions"
RESOLUTIONS = "sync.exception-resolutions"
ESCALATIONS = "sync.escalations"
DRIFT_ALERTS = "sync.drift-alerts"
AUDIT = "sync.audit"
DEAD_LETTER = "sync.dead-letter"

# The order topics must be read (and ownership decided) in: a deal's CRM rows are known before the
# dead letters keyed by them, its dead letters before their exceptions, its exceptions before their
# resolutions, escalations and audit records.
READ_ORDER = (
    DEAL_CHANGES,
    ERP_EVENTS,
    ERP_MILESTONES,
    ERP_COMMANDS,
    CRM_UPDATES,
    DEAD_LETTER,
    EXCEPTIONS,
    RESOLUTIONS,
    ESCALATIONS,
    DRIFT_ALERTS,
    AUDIT,
)
# Tie-break within one millisecond: the direction data flows through the service.
FLOW = (
    ERP_EVENTS,
    ERP_MILESTONES,
    DEAL_CHANGES,
    DEAD_LETTER,
    EXCEPTIONS,
    ERP_COMMANDS,
    CRM_UPDATES,
    DRIFT_ALERTS,
    RESOLUTIONS,
    ESCALATIONS,
    AUDIT,
)
AVRO_TOPICS = frozenset(READ_ORDER) - {DEAL_CHANGES, DEAD_LETTER}

DETAIL_CHARS = 120  # free-text details are cut to this length in summaries

# kinds of timeline entries
CDC = "CDC"
ERP = "ERP"
RECHECK = "RECHECK"
ERP_IN = "ERP-IN"
ERP_COMMAND = "ERP-COMMAND"
CRM_UPDATE = "CRM-UPDATE"
EXCEPTION = "EXCEPTION"
RESOLUTION = "RESOLUTION"
ESCALATION = "ESCALATION"
DRIFT = "DRIFT"
AUDIT_KIND = "AUDIT"
DEAD_LETTER_KIND = "DEAD-LETTER"

# the CDC fields worth a glance, per canonical table
_HIGHLIGHTS = {
    "opportunity": ("stage", "amount", "currency"),
    "opportunity_line_item": ("product_id", "quantity", "unit_price", "discount_percent"),
}


@dataclass(frozen=True, slots=True)
class Record:
    """One message as read: catalog topic name (no prefix), coordinates, decoded key and value.

    ``value`` is the JSON object (``sync.deal-changes``), the Avro record with union branches named
    as ``(full name, record)`` tuples, or None (dead letters: the original bytes are not shown).
    ``error`` says why a value that should have decoded did not.
    """

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: str | None
    value: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of the timeline."""

    at_ms: int | None
    topic: str
    partition: int
    offset: int
    kind: str
    summary: str
    ids: dict[str, str]
    replay: dict[str, str | None] | None = None

    @property
    def at(self) -> str | None:
        return iso(self.at_ms)

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "kind": self.kind,
            "summary": self.summary,
            "ids": dict(self.ids),
            "replay": dict(self.replay) if self.replay else None,
        }

    def line(self, topic_width: int = 0, kind_width: int = 0) -> str:
        ids = " ".join(f"{k}={v}" for k, v in self.ids.items())
        text = f"{self.at or '-':<24}  {self.topic:<{topic_width}}  {self.kind:<{kind_width}}  {self.summary}"
        if ids:
            text += f"  [{ids}]"
        if self.replay:
            text += f"  (replay {self.replay['id']} of {self.replay.get('of') or '?'})"
        return text


def iso(ms: int | None) -> str | None:
    """``ms`` as an ISO-8601 UTC instant with milliseconds (``…T10:00:00.123Z``)."""
    if ms is None:
        return None
    at = dt.datetime.fromtimestamp(ms // 1000, dt.UTC).replace(microsecond=(ms % 1000) * 1000)
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Deal:
    """Which records belong to one deal; learns the deal's exception ids and CRM row ids as it goes.

    Feed it records in ``READ_ORDER`` of their topics.
    """

    def __init__(self, opp: str) -> None:
        self.opp = opp
        self.exception_ids: set[str] = set()
        self.row_ids: set[str] = set()
        self.dead_letter_sources: set[str] = set()  # topic/partition/offset: how their exceptions are keyed

    def _own_id(self, ident: str | None) -> bool:
        return ident is not None and (ident == self.opp or ident.startswith(f"{self.opp}:"))

    def wants(self, topic: str, key: str | None) -> bool:
        """Whether a message with ``key`` may belong to the deal (worth decoding)."""
        if topic in (DEAL_CHANGES, ERP_EVENTS, ERP_MILESTONES, ERP_COMMANDS, CRM_UPDATES):
            return key == self.opp
        if topic == EXCEPTIONS:
            return self._own_id(key) or key in self.dead_letter_sources
        if topic == DRIFT_ALERTS:
            return self._own_id(key)
        if topic in (RESOLUTIONS, ESCALATIONS, AUDIT):
            return self._own_id(key) or key in self.exception_ids
        if topic == DEAD_LETTER:
            return key is not None and (key == self.opp or key in self.row_ids)
        return False

    def owns(self, rec: Record) -> bool:
        """Whether the decoded record belongs to the deal (and remember the ids it adds)."""
        value = rec.value if isinstance(rec.value, Mapping) else {}
        if rec.topic == EXCEPTIONS:
            mine = (
                self.wants(rec.topic, rec.key)
                or value.get("correlation_id") == self.opp
                or value.get("exception_id") in self.exception_ids
            )
            if mine and value.get("exception_id"):
                self.exception_ids.add(value["exception_id"])
            return mine
        if not self.wants(rec.topic, rec.key):
            return False
        if rec.topic == DEAL_CHANGES and "table" in value and value.get("id") is not None:
            self.row_ids.add(str(value["id"]))
        if rec.topic == DEAD_LETTER:
            h = rec.headers
            if h.get("x-exception-id"):
                self.exception_ids.add(h["x-exception-id"])
            if h.get("x-source-topic"):
                source = f"{h['x-source-topic']}/{h.get('x-source-partition')}/{h.get('x-source-offset')}"
                self.dead_letter_sources.add(source)
        return True


def timeline(
    records: Iterable[Record],
    opp: str,
    since_ms: int | None = None,
    verbose: bool = False,
    prefix: str = "",
) -> list[Entry]:
    """The deal's entries in time order; ``prefix`` (the topic prefix) is cut from topic names shown."""
    rank = {t: i for i, t in enumerate(READ_ORDER)}
    flow = {t: i for i, t in enumerate(FLOW)}
    deal = Deal(opp)
    ordered = sorted(records, key=lambda r: (rank.get(r.topic, len(rank)), r.partition, r.offset))
    mine = [r for r in ordered if deal.owns(r)]
    entries: list[tuple[tuple, Entry]] = []
    for rec in mine:
        if since_ms is not None and (rec.timestamp_ms is None or rec.timestamp_ms < since_ms):
            continue
        entry = entry_of(rec, prefix)
        if entry is None or (entry.kind == RECHECK and not verbose):
            continue
        at = rec.timestamp_ms if rec.timestamp_ms is not None else -1
        entries.append(((at, flow.get(rec.topic, len(flow)), rec.partition, rec.offset), entry))
    entries.sort(key=lambda pair: pair[0])
    return [e for _, e in entries]


def render(entries: list[Entry], opp: str) -> str:
    """The timeline as aligned text lines (or a one-line note when it is empty)."""
    if not entries:
        return f"no events for {opp}\n"
    tw = max(len(e.topic) for e in entries)
    kw = max(len(e.kind) for e in entries)
    return "".join(e.line(tw, kw) + "\n" for e in entries)


# --- one record, one entry --------------------------------------------------------------------


def entry_of(rec: Record, prefix: str = "") -> Entry | None:
    """The timeline entry of one record (None for records that are not events, e.g. tombstones)."""
    if rec.topic == DEAD_LETTER:
        kind, summary, ids = _dead_letter(rec, prefix)
    elif rec.error is not None:
        kind, summary, ids = _KIND_OF.get(rec.topic, "?"), f"undecodable: {_cut(rec.error)}", {}
    elif rec.value is None:
        return None
    else:
        describe = _DESCRIBE.get(rec.topic)
        if describe is None:
            return None
        kind, summary, ids = describe(rec.value, prefix)
    replay = None
    if rec.headers.get("x-replay-id"):
        replay = {"id": rec.headers["x-replay-id"], "of": rec.headers.get("x-replay-of")}
        ids = {**ids, "replay_id": rec.headers["x-replay-id"]}
    return Entry(
        rec.timestamp_ms, _unprefixed(rec.topic, prefix), rec.partition, rec.offset, kind, summary, ids, replay
    )


def _unprefixed(topic: str, prefix: str) -> str:
    return topic[len(prefix) :] if prefix and topic.startswith(prefix) else topic


def _cut(text: Any, limit: int = DETAIL_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _branch(value: Any) -> tuple[str, Mapping[str, Any]]:
    """A union branch read with record names: ``(short name, record)``; a bare record has no name."""
    if isinstance(value, tuple | list) and len(value) == 2 and isinstance(value[0], str):
        return _short(value[0]), value[1] if isinstance(value[1], Mapping) else {}
    return "?", value if isinstance(value, Mapping) else {}


def _ids(**ids: Any) -> dict[str, str]:
    return {k: str(v) for k, v in ids.items() if v not in (None, "")}


def _pairs(fields: Mapping[str, Any], names: Iterable[str]) -> str:
    return " ".join(f"{n}={fields[n]}" for n in names if fields.get(n) is not None)


def _deal_change(v: Mapping[str, Any], prefix: str) -> tuple[str, str, dict[str, str]]:
    if "erp" in v:
        e = v["erp"]
        order = f" order={e['order_number']}" if e.get("order_number") else ""
        return (
            ERP,
            f"ERP {e.get('kind')} {e.get('event_id')}{order}",
            _ids(event_id=e.get("event_id"), command_id=e.get("command_id")),
        )
    if v.get("recheck"):
        return RECHECK, f"re-check {v.get('opp')}", {}
    table = v.get("table", "?")
    parts = [f"CRM {table} {v.get('op')} {v.get('id')}"]
    highlights = _pairs(v.get("fields") or {}, _HIGHLIGHTS.get(table, ()))
    if highlights:
        parts.append(highlights)
    if v.get("snapshot"):
        parts.append("[snapshot]")
    lineage = v.get("lineage") or []
    if len(lineage) >= 3:
        parts.append(f"({_unprefixed(str(lineage[0]), prefix)}/{lineage[1]}/{lineage[2]})")
    return CDC, " ".join(parts), {}


def _erp_in(v: Mapping[str, Any], _prefix: str) -> tuple[str, str, dict[str, str]]:
    name, _ = _branch(v.get("event"))
    order = f" order={v['order_number']}" if v.get("order_number") else ""
    return (
        ERP_IN,
        f"ERP-IN {name} {v.get('event_id')}{order}",
        _ids(event_id=v.get("event_id"), command_id=v.get("command_id")),
    )


def _milestone(v: Mapping[str, Any], _prefix: str) -> tuple[str, str, dict[str, str]]:
    ref = f" ref={v['reference']}" if v.get("reference") else ""
    return (
        ERP_IN,
        f"ERP-IN {v.get('milestone')} {v.get('event_id')}{ref}",
        _ids(event_id=v.get("event_id"), command_id=v.get("command_id")),
    )


def _money(body: Mapping[str, Any], amount: str = "amount") -> str:
    if body.get(amount) is None:
        return ""
    return f" {body[amount]} {body.get('currency') or ''}".rstrip()


def _erp_command(v: Mapping[str, Any], _prefix: str) -> tuple[str, str, dict[str, str]]:
    envelope = v.get("envelope") or {}
    name, body = _branch(v.get("command"))
    parts = [name]
    if body.get("order_number"):
        parts.append(str(body["order_number"]))
    money = _money(body).strip()
    if money:
        parts.append(money)
    if isinstance(body.get("lines"), list):
        parts.append(f"{len(body['lines'])} line(s)")
    if body.get("customer_number"):
        parts.append(f"customer={body['customer_number']}")
    if body.get("reason"):
        parts.append(f"reason={_cut(body['reason'], 60)}")
    return ERP_COMMAND, " ".join(parts), _ids(command_id=envelope.get("command_id"))


def _crm_update(v: Mapping[str, Any], _prefix: str) -> tuple[str, str, dict[str, str]]:
    envelope = v.get("envelope") or {}
    shown = {
        "order": v.get("order_status"),
        "fulfilment": v.get("fulfilment_status"),
        "invoice": v.get("invoice_status"),
        "payment": v.get("payment_status"),
        "erp_order": v.get("erp_order_number"),
        "credit_hold": "yes" if v.get("credit_hold") else None,
        "disputed": "yes" if v.get("disputed") else None,
        "activated": v.get("service_activated_at"),
        "customer_accepted": v.get("customer_accepted_at"),
    }
    text = " ".join(f"{k}={x}" for k, x in shown.items() if x is not None)
    return CRM_UPDATE, f"CRM update {text}".rstrip(), _ids(command_id=envelope.get("command_id"))


def _exception(v: Mapping[str, Any], _prefix: str) -> tuple[str, str, dict[str, str]]:
    summary = f"EXCEPTION {v.get('reason_code')} {v.get('status')} ({v.get('exception_type')}, {v.get('severity')})"
    if v.get("owner_team"):
        summary += f" → {v['owner_team']}"
    if v.get("replay_of"):
        summary += f" replay #{v.get('replay_count', 0)} of {v['replay_of']}"
    if v.get("detail"):
        summary += f": {_cut(v['detail'])}"
    return EXCEPTION, summary, _ids(exception_id=v.get("exception_id"), replay_of=v.get("replay_of"))


def _resolution(v: Mapping[str, Any], _prefix: str) -> tuple[str, str, dict[str, str]]:
    summary = f"RESOLVED {v.get('resolution')} by {v.get('resolved_by')}"
    if v.get("note"):
        summary += f": {_cut(v['note'])}"
    return RESOLUTION, summary, _ids(exception_id=v.get("exception_id"))


def _escalation(v: Mapping[str, Any], _prefix: str) -> tuple[str, str, dict[str, str]]:
    summary = (
        f"ESCALATION {v.get('reason_code')} to {v.get('route_team')} via {v.get('channel')} "
        f"({v.get('mode')}, {v.get('severity')}), {v.get('overdue_minutes')} min overdue"
    )
    return ESCALATION, summary, _ids(exception_id=v.get("exception_id"), escalation_id=v.get("escalation_id"))


def _drift(v: Mapping[str, Any], _prefix: str) -> tuple[str, str, dict[str, str]]:
    summary = f"DRIFT {v.get('kind')} {v.get('state')} ({v.get('severity')})"
    if v.get("expected") is not None or v.get("observed") is not None:
        summary += f": expected {v.get('expected')}, observed {v.get('observed')}"
    if v.get("amount_at_risk") is not None:
        summary += f", at risk{_money(v, 'amount_at_risk')}"
    return DRIFT, summary, _ids(alert_id=v.get("alert_id"))


def _audit(v: Mapping[str, Any], _prefix: str) -> tuple[str, str, dict[str, str]]:
    summary = f"AUDIT {v.get('action')} by {v.get('actor')} ({v.get('actor_kind')}) on {v.get('subject_id')}"
    if v.get("detail"):
        summary += f": {_cut(v['detail'])}"
    return AUDIT_KIND, summary, _ids(audit_id=v.get("audit_id"))


def _dead_letter(rec: Record, prefix: str) -> tuple[str, str, dict[str, str]]:
    h = rec.headers
    summary = f"DEAD-LETTER {h.get('x-reason', '?')}"
    if h.get("x-source-topic"):
        source = _unprefixed(h["x-source-topic"], prefix)
        summary += f" from {source}/{h.get('x-source-partition', '?')}/{h.get('x-source-offset', '?')}"
    if h.get("x-detail"):
        summary += f": {_cut(h['x-detail'])}"
    return DEAD_LETTER_KIND, summary, _ids(exception_id=h.get("x-exception-id"))


_DESCRIBE = {
    DEAL_CHANGES: _deal_change,
    ERP_EVENTS: _erp_in,
    ERP_MILESTONES: _milestone,
    ERP_COMMANDS: _erp_command,
    CRM_UPDATES: _crm_update,
    EXCEPTIONS: _exception,
    RESOLUTIONS: _resolution,
    ESCALATIONS: _escalation,
    DRIFT_ALERTS: _drift,
    AUDIT: _audit,
}
_KIND_OF = {
    DEAL_CHANGES: CDC,
    ERP_EVENTS: ERP_IN,
    ERP_MILESTONES: ERP_IN,
    ERP_COMMANDS: ERP_COMMAND,
    CRM_UPDATES: CRM_UPDATE,
    EXCEPTIONS: EXCEPTION,
    RESOLUTIONS: RESOLUTION,
    ESCALATIONS: ESCALATION,
    DRIFT_ALERTS: DRIFT,
    AUDIT: AUDIT_KIND,
}
