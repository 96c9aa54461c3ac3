"""The service's own Prometheus metrics (Faust's sensors share the same default registry).

Label sets are bounded: topics, flows, outcomes, command types, reason codes — never customer,
deal or order ids.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

events_consumed = Counter(
    "crm_erp_sync_events_consumed_total", "Events consumed, per source (CRM table, or ERP event topic)", ["topic"]
)
flow_events = Counter(
    "crm_erp_sync_flow_events_total",
    "Events processed per flow and outcome (applied, duplicate, stale, parked, rejected, quarantined, ...)",
    ["flow", "outcome"],
)
commands_emitted = Counter("crm_erp_sync_commands_emitted_total", "Commands emitted, per command type", ["type"])
exceptions_raised = Counter(
    "crm_erp_sync_exceptions_raised_total", "Exception records emitted, per reason code", ["reason"]
)
lifecycle_cycle_seconds = Histogram(
    "crm_erp_sync_lifecycle_cycle_seconds",
    "Order lifecycle cycle times: order_handoff (CRM close to ERP acceptance), close_to_invoice (to the first "
    "invoice), invoice_to_paid (first invoice to paid in full); ERP event time against the CRM's commit time",
    ["cycle"],
    buckets=(1, 10, 60, 300, 900, 3600, 4 * 3600, 86400, 2 * 86400, 7 * 86400, 14 * 86400, 30 * 86400, 90 * 86400),
)
orders_invoiced = Counter(
    "crm_erp_sync_orders_invoiced_total",
    "Orders billed at once, at their first invoice: accurate=true when it matches the accepted amount and currency",
    ["accurate"],
)
deals_closed_won = Counter(
    "crm_erp_sync_deals_closed_won_total", "Deals that became closed-won (a deal reopened and won again counts again)"
)
source_to_command_seconds = Histogram(
    "crm_erp_sync_source_to_command_seconds",
    "From the CDC source commit timestamp to the command being sent, per flow",
    ["flow"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60),
)
drift_alerts = Counter(
    "crm_erp_sync_drift_alerts_total",
    "Drift alert records emitted, per kind and state (OPEN, RESOLVED)",
    ["kind", "state"],
)
parity_ratio = Gauge(
    "crm_erp_sync_parity_ratio",
    "ERP-accepted over CRM closed-won amount for the last judged window, per window length and currency",
    ["window", "currency"],
)
parity_gap_amount = Gauge(
    "crm_erp_sync_parity_gap_amount",
    "CRM closed-won minus ERP-accepted amount for the last judged window, per window length and currency",
    ["window", "currency"],
)
quarantined = Counter(
    "crm_erp_sync_quarantined_total", "Messages dead-lettered with an exception record, per reason code", ["reason"]
)
retried = Counter("crm_erp_sync_retry_tier_sends_total", "Messages handed to a retry tier, per tier", ["tier"])
retry_returned = Counter(
    "crm_erp_sync_retry_tier_returns_total", "Messages a retry tier sent back to their topic, per tier", ["tier"]
)
escalations = Counter(
    "crm_erp_sync_escalations_total", "Open exceptions escalated past their SLA, per team and mode", ["team", "mode"]
)
open_exceptions = Gauge(
    "crm_erp_sync_open_exceptions",
    "Exceptions not resolved (open, parked, retrying, dead-lettered), per reason code and severity",
    ["reason", "severity"],
)
oldest_open_exception_seconds = Gauge(
    "crm_erp_sync_oldest_open_exception_age_seconds",
    "Age of the oldest unresolved exception, per severity",
    ["severity"],
)
exceptions_past_sla = Gauge(
    "crm_erp_sync_exceptions_past_sla", "Unresolved exceptions older than their SLA", ["severity"]
)
open_drift_alerts = Gauge("crm_erp_sync_open_drift_alerts", "Drift alerts open now, per kind", ["kind"])
oldest_open_drift_alert_seconds = Gauge(
    "crm_erp_sync_oldest_open_drift_alert_age_seconds", "Age of the oldest open drift alert, per kind", ["kind"]
)
revenue_at_risk = Gauge(
    "crm_erp_sync_revenue_at_risk",
    "Amount at risk per currency, each deal counted once with its largest open amount: per source (exceptions, "
    "drift_alerts) and over both (total); sum the total over workers",
    ["source", "currency"],
)
registry_up = Gauge("crm_erp_sync_registry_up", "1 when the schema registry answered the last probe, else 0")
stage_seconds = Histogram(
    "crm_erp_sync_stage_seconds",
    "Processing time per stage of an event: decode, decide, encode, state (table writes), send",
    ["stage"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1),
)
dedup_hits = Counter(
    "crm_erp_sync_dedup_hits_total",
    "Events recognised as already applied (a CDC duplicate, an ERP event id seen before, a redelivery), per flow",
    ["flow"],
)
missing_topics = Gauge(
    "crm_erp_sync_missing_topics", "Catalog topics the broker does not have (run `crm-erp-sync topics apply`)"
)
stuck_partitions = Gauge(
    "crm_erp_sync_stuck_partitions",
    "Assigned input partitions with lag whose committed offset has not moved for CRM_ERP_STALL_AFTER_S",
)
quarantine_blocked = Gauge(
    "crm_erp_sync_quarantine_blocked",
    "Partitions held because not even a minimal quarantine record can be written (the broker refuses it)",
)
unreadable_source_schemas = Gauge(
    "crm_erp_sync_unreadable_source_schemas",
    "Registered writer schemas of CDC source subjects the mappings cannot read (run `crm-erp-sync sources check`)",
)
registry_lookups = Counter(
    "crm_erp_sync_registry_lookups_total",
    "Schema lookups per kind (writer schema by id, id of a subject's schema) and result (hit: cache, miss, error)",
    ["kind", "result"],
)
consumer_lag = Gauge(
    "crm_erp_sync_consumer_lag",
    "Messages after the committed offset, per topic-partition assigned to this worker",
    ["topic", "partition"],
)
retry_tier_depth = Gauge(
    "crm_erp_sync_retry_tier_depth", "Messages waiting in a retry tier on this worker's partitions", ["tier"]
)
