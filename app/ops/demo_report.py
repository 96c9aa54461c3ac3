"""The demo's summary: what the simulators sent against what the service did, from the records alone.

Pure: the demo runner reads the topics and the worker's metrics, this module counts and renders.
Commands are counted by distinct ``command_id`` (delivery is at-least-once: a redelivered command
repeats its id), exceptions and alerts by their ids.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from app.domain.parity.at_risk import AtRisk, revenue_at_risk


@dataclass
class Observed:
    """What the service produced during the demo (decoded values; see ``app.ops.demo``)."""

    sales_orders: list[dict[str, Any]] = field(default_factory=list)
    customers: list[dict[str, Any]] = field(default_factory=list)
    crm_updates: list[dict[str, Any]] = field(default_factory=list)
    account_updates: list[dict[str, Any]] = field(default_factory=list)  # the customer links written back
    renewals: list[dict[str, Any]] = field(default_factory=list)  # renewal opportunity requests
    exceptions: list[dict[str, Any]] = field(default_factory=list)
    resolutions: list[dict[str, Any]] = field(default_factory=list)
    dead_letter_reasons: list[str] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    create_latencies_ms: list[float] = field(default_factory=list)  # command timestamp - CDC commit time
    dedup_hits: float = 0.0
    metrics: list[Sample] = field(default_factory=list)  # the worker's /metrics at the end of the run


@dataclass(frozen=True, slots=True)
class Sample:
    """One sample of the worker's /metrics."""

    name: str
    labels: Mapping[str, str]
    value: float


CYCLES = ("order_handoff", "close_to_invoice", "invoice_to_paid")


def _sum(samples: Iterable[Sample], name: str, **labels: str) -> float:
    return sum(s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def lifecycle_kpis(samples: list[Sample]) -> dict[str, Any]:
    """The lifecycle KPIs from the worker's metrics: per cycle its count, mean and the histogram bucket
    that holds its median; billing accuracy; exceptions per 100 closed-won deals."""
    cycles: dict[str, dict[str, Any]] = {}
    for cycle in CYCLES:
        count = _sum(samples, "crm_erp_sync_lifecycle_cycle_seconds_count", cycle=cycle)
        total = _sum(samples, "crm_erp_sync_lifecycle_cycle_seconds_sum", cycle=cycle)
        buckets = sorted(
            (float(s.labels["le"]), s.value)
            for s in samples
            if s.name == "crm_erp_sync_lifecycle_cycle_seconds_bucket" and s.labels.get("cycle") == cycle
        )
        median = next((le for le, n in buckets if n >= count / 2), None) if count else None
        cycles[cycle] = {"count": int(count), "mean_s": total / count if count else None, "p50_at_most_s": median}
    checked = _sum(samples, "crm_erp_sync_orders_invoiced_total")
    accurate = _sum(samples, "crm_erp_sync_orders_invoiced_total", accurate="true")
    closed = _sum(samples, "crm_erp_sync_deals_closed_won_total")
    raised = _sum(samples, "crm_erp_sync_exceptions_raised_total")
    return {
        "cycles": cycles,
        "orders_billing_checked": int(checked),
        "billing_accuracy": accurate / checked if checked else None,
        "deals_closed_won": int(closed),
        "exceptions_per_100_deals": 100 * raised / closed if closed else None,
    }


def _kind(command: dict[str, Any]) -> str:
    body = command["command"]
    name = body[0] if isinstance(body, tuple) else body.get("-type", "")
    return name.rsplit(".", 1)[-1]


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def summarise(crm: Mapping[str, Any], erp: Mapping[str, Any], seen: Observed) -> dict[str, Any]:
    """``crm``/``erp``: the simulators' ``totals()``/``to_json()``; ``seen``: the service's records."""
    commands: dict[str, set[str]] = defaultdict(set)
    for c in seen.sales_orders:
        commands[_kind(c)].add(c["envelope"]["command_id"])
    exceptions = {e["exception_id"]: e for e in seen.exceptions}
    resolved = {r["exception_id"] for r in seen.resolutions}
    opened = {a["alert_id"]: a for a in seen.alerts if a["state"] == "OPEN"}
    closed = {a["alert_id"] for a in seen.alerts if a["state"] == "RESOLVED"}
    risks = [
        AtRisk(
            "drift_alerts", a.get("correlation_id") or a["alert_id"], a["currency"], Decimal(str(a["amount_at_risk"]))
        )
        for a in opened.values()
        if a["alert_id"] not in closed and a.get("amount_at_risk") is not None and a.get("currency")
    ] + [
        AtRisk(
            "exceptions", e.get("correlation_id") or e["exception_id"], e["currency"], Decimal(str(e["amount_at_risk"]))
        )
        for e in exceptions.values()
        if e["exception_id"] not in resolved and e.get("amount_at_risk") is not None and e.get("currency")
    ]
    linked = {u["account_id"] for u in seen.account_updates if u.get("erp_customer_status") == "ACTIVE"}
    waiting = {
        e["exception_id"]
        for e in exceptions.values()
        if e["reason_code"] == "CUSTOMER_NOT_LINKED" and e["exception_id"] not in resolved
    }
    activated = {u["opportunity_id"] for u in seen.crm_updates if u.get("service_activated_at")}
    signed_off = {u["opportunity_id"] for u in seen.crm_updates if u.get("customer_accepted_at")}
    at_risk = {currency: amount for (source, currency), amount in revenue_at_risk(risks).items() if source == "total"}
    lat = sorted(seen.create_latencies_ms)
    return {
        "crm": {
            "messages": crm["messages"],
            "duplicates_sent": crm["by_kind"].get("duplicate", 0),
            "malformed_sent": sum(crm["malformed_by_defect"].values()),
            "deals": crm["deals"],
            "expected": crm["expected"],
        },
        "service": {
            "orders_created": len(commands["CreateSalesOrder"]),
            "amends": len(commands["AmendSalesOrder"]),
            "cancels": len(commands["CancelSalesOrder"]),
            "customer_upserts": len({c["envelope"]["command_id"] for c in seen.customers}),
            "crm_updates": len({u["envelope"]["command_id"] for u in seen.crm_updates}),
            "customers_linked": len(linked),
            "deals_waiting_for_a_link": len(waiting),
            "lifecycle_kpis": lifecycle_kpis(seen.metrics),
            "renewals_requested": len({r["envelope"]["command_id"] for r in seen.renewals}),
            "orders_activated": len(activated),
            "orders_accepted_by_customer": len(signed_off),
            "duplicates_suppressed": int(seen.dedup_hits),
            "exceptions_by_reason": dict(sorted(Counter(e["reason_code"] for e in exceptions.values()).items())),
            "exceptions_resolved": len(resolved & exceptions.keys()),
            "quarantined_by_reason": dict(sorted(Counter(seen.dead_letter_reasons).items())),
            "drift_alerts_by_kind": _alerts(opened, closed),
            "revenue_at_risk": {c: str(a) for c, a in sorted(at_risk.items())},
            "create_latency_ms": {
                "count": len(lat),
                "p50": _pct(lat, 50),
                "p95": _pct(lat, 95),
                "p99": _pct(lat, 99),
            },
        },
        "erp": {
            "orders": erp["orders"],
            "outcomes": erp["outcomes"],
            "faults": erp["faults"],
            "events_delivered": sum(erp["events_delivered"].values()),
            "customers": erp.get("customers", {}),
        },
    }


def _alerts(opened: Mapping[str, dict[str, Any]], closed: set[str]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for alert_id, a in opened.items():
        row = out.setdefault(a["kind"], {"opened": 0, "resolved": 0})
        row["opened"] += 1
        row["resolved"] += alert_id in closed
    return dict(sorted(out.items()))


def _pairs(counts: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def _kpi_lines(k: Mapping[str, Any]) -> list[str]:
    cycles = [
        f"{name.replace('_', ' ')} mean {_seconds(c['mean_s'])} (p50 ≤ {_seconds(c['p50_at_most_s'])}, n {c['count']})"
        for name, c in k["cycles"].items()
    ]
    accuracy = "-" if k["billing_accuracy"] is None else f"{100 * k['billing_accuracy']:.1f} %"
    per_100 = "-" if k["exceptions_per_100_deals"] is None else f"{k['exceptions_per_100_deals']:.1f}"
    return [
        f"cycle times            {cycles[0]}",
        *(f"                       {line}" for line in cycles[1:]),
        f"billing accuracy       {accuracy} of {k['orders_billing_checked']} orders billed at once; "
        f"exceptions per 100 deals {per_100} ({k['deals_closed_won']} closed won)",
    ]


def render(summary: Mapping[str, Any], where: Iterable[str] = ()) -> str:
    c, s, e = summary["crm"], summary["service"], summary["erp"]
    d, x, lat = c["deals"], c["expected"], s["create_latency_ms"]
    alerts = {k: f"{v['opened']} opened / {v['resolved']} resolved" for k, v in s["drift_alerts_by_kind"].items()}
    lines = [
        "── CRM (simulated) ─────────────────────────────────────────────",
        f"messages sent          {c['messages']} ({c['duplicates_sent']} duplicates, {c['malformed_sent']} malformed)",
        f"deals                  {d['finished']} finished: {d['closed_won']} closed won, {d['lost']} lost, "
        f"{d['reopened']} reopened, {d['deleted']} deleted",
        f"expected               {x['create_command_ids']} create command ids, {x['amends']} amends, "
        f"{x['cancels']} cancels, {x['incomplete_deals']} incomplete deals",
        "── the service ─────────────────────────────────────────────────",
        f"orders created         {s['orders_created']} (distinct command ids; expected {x['create_command_ids']})",
        f"amends / cancels       {s['amends']} / {s['cancels']}",
        f"customer commands      {s['customer_upserts']}",
        f"customers linked       {s['customers_linked']} ({_pairs(e['customers'].get('events', {}))} from the ERP; "
        f"{e['customers'].get('dropped', 0)} answers lost); deals still waiting for a link "
        f"{s['deals_waiting_for_a_link']}",
        f"milestones             {s['orders_activated']} orders activated, {s['orders_accepted_by_customer']} "
        f"accepted by the customer (the CRM told of each); invoiced before acceptance "
        f"{e['faults'].get('early_invoice', 0)} (LIFECYCLE_GAP until accepted)",
        f"renewals               {s['renewals_requested']} requested from the CRM (expected "
        f"{x.get('renewals_due', 0)}: terms ended); RENEWAL_MISSING {alerts.get('RENEWAL_MISSING', 'none')} "
        f"(expected still open {x.get('renewals_missing', 0)}: not renewed in the CRM)",
        f"CRM updates            {s['crm_updates']} (from {e['events_delivered']} ERP events)",
        f"duplicates suppressed  {s['duplicates_suppressed']}",
        f"exceptions by reason   {_pairs(s['exceptions_by_reason'])} ({s['exceptions_resolved']} resolved)",
        f"quarantined            {_pairs(s['quarantined_by_reason'])}",
        f"drift alerts by kind   {_pairs(alerts)}",
        f"revenue at risk        {_pairs(s['revenue_at_risk'])}",
        f"CDC to order latency   p50 {_ms(lat['p50'])}, p95 {_ms(lat['p95'])}, p99 {_ms(lat['p99'])} "
        f"over {lat['count']} creates",
        *_kpi_lines(s["lifecycle_kpis"]),
        "── ERP (simulated) ─────────────────────────────────────────────",
        f"orders                 {e['orders']}: {_pairs(e['outcomes'])}",
        f"faults injected        {_pairs(e['faults'])}",
    ]
    return "\n".join([*lines, *where]) + "\n"
