"""The Faust tables. Names are public contracts: their changelog topics are ``<app_id>-<name>-changelog``.

Values are JSON bytes (never registry Avro: a changelog whose schema ids must resolve forever is a
liability). Keys equal the message key of the stream that writes them, so reads and writes stay in
the event's partition. A flow's outbox rows (app/engine/keyed.py) sit in the table of its state
under keys starting with ``OUTBOX_PREFIX``; readers skip them (``app.flows.step.rows``).
"""

from __future__ import annotations

import faust

from app.catalog import internal_partitions, profile
from app.engine.table import Table
from app.settings import Settings

ROCKSDB_OPTIONS = {"write_buffer_size": 8 * 1024 * 1024}  # per instance; all share one budget (app/engine/rocksdb.py)


class Tables:
    """Every table of the worker, declared on ``app`` once at start-up."""

    def __init__(self, app: faust.App, settings: Settings) -> None:
        env = profile(settings.topic_profile)
        changelog_config = {"min.insync.replicas": str(min(env.min_insync_replicas, env.replication))}

        def table(name: str, help_: str) -> Table:
            return app.Table(  # type: ignore[return-value]  # the app's Table class is ours (app/engine/app.py)
                name,
                key_type=bytes,  # bytes types make Faust use the raw codec for the store and the changelog
                value_type=bytes,
                partitions=internal_partitions(settings.topic_partitions, settings.topic_profile),
                options=ROCKSDB_OPTIONS,
                extra_topic_configs=changelog_config,  # the profile's durability for the changelog too
                help=help_,
            )

        self.deals = table("deals", "opportunity id -> assembled deal state (DealState JSON)")
        self.parked = table("parked-deals", "opportunity id -> what the parked deal waits for (JSON)")
        self.row_index = table("row-index", "<table>:<row id> -> where a CRM row belongs (opportunity, price key)")
        self.deadlines = table("sla-deadlines", "opportunity id -> epoch ms when its order's next ERP SLA falls due")
        self.parity_windows = table(
            "parity-windows",
            "bucket|<currency>|<1h|1d>|<start ms> -> window sums and alert (JSON); "
            "<currency>|<side>|<opportunity id> -> the deal's last contribution (JSON)",
        )
        # where contributions lived up to 0.1; read and emptied as deals change (app/flows/parity.py)
        self.parity_entries = table(
            "parity-entries", "(0.1) <currency>|<side>|<opportunity id> -> the deal's last contribution"
        )
        self.exception_ledger = table("exception-ledger", "exception id -> open/resolved state with its record (JSON)")
        self.escalation_due = table("escalation-due", "exception id -> epoch ms when its SLA to resolve runs out")
        self.open_alerts = table(
            "open-drift-alerts",
            "alert id -> kind, amount at risk, currency, opened at, severity, owner, ids and summary "
            "of an open drift alert",
        )
        self.customer_views = table(
            "customer-views",
            "account id -> the customer view the ERP was last sent (JSON), beside the account flow's outbox",
        )
        self.alert_ledger = table(
            "alert-ledger", "alert id -> the drift alert with its operator actions and escalation (JSON)"
        )
        self.alert_due = table("alert-escalation-due", "alert id -> epoch ms when its SLA or its retention runs out")
        self.customer_links = table(
            "customer-links",
            "account id -> the ERP customer link: number, status, credit (JSON), beside the link flow's outbox",
        )
