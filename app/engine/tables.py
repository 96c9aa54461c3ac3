"""The Faust tables. Names are public contracts: their changelog topics are ``<app_id>-<name>-changelog``.

Values are JSON bytes (never registry Avro: a changelog whose schema ids must resolve forever is a
liability). Keys equal the message key of the stream that writes them, so reads and writes stay in
the event's partition.
"""

from __future__ import annotations

from app.engine.app import app, settings

ROCKSDB_OPTIONS = {"block_cache_size": 32 * 1024 * 1024, "write_buffer_size": 8 * 1024 * 1024}


def _table(name: str, help_: str):
    return app.Table(
        name,
        key_type=bytes,  # bytes types make Faust use the raw codec for the store and the changelog
        value_type=bytes,
        partitions=settings.topic_partitions,
        options=ROCKSDB_OPTIONS,
        help=help_,
    )


deals = _table("deals", "opportunity id -> assembled deal state (DealState JSON)")
parked = _table("parked-deals", "opportunity id -> what the parked deal waits for (JSON)")
row_index = _table("row-index", "<table>:<row id> -> where a CRM row belongs (opportunity, price key)")
deadlines = _table("sla-deadlines", "opportunity id -> epoch ms when its order's next ERP SLA falls due")
parity_windows = _table("parity-windows", "bucket|<currency>|<1h|1d>|<start ms> -> window sums and alert (JSON)")
parity_entries = _table("parity-entries", "<currency>|<side>|<opportunity id> -> the deal's last contribution (JSON)")
exception_ledger = _table("exception-ledger", "exception id -> open/resolved state with its record (JSON)")
escalation_due = _table("escalation-due", "exception id -> epoch ms when its SLA to resolve runs out")
open_alerts = _table(
    "open-drift-alerts",
    "alert id -> kind, amount at risk, currency, opened at, severity, owner, ids and summary of an open drift alert",
)
