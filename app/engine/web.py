"""The worker's HTTP endpoints: ``/metrics`` (Faust's sensors + the service's), ``/health``, ``/ready``, ``/ops``,
and the decision-boundary API ``/api/v1/…`` (app/engine/api.py).

Table contents are never served (``web_tables_enabled=False``): they hold customer data, and Faust's
``/router``, ``/graph`` and stats pages are off. ``/ops`` (for people) shows ids, reasons, owners,
amounts, ages and masked summaries of the open exceptions and drift alerts in this worker's
partitions, rendered by ``app.observe.ops_page``. With ``CRM_ERP_WEB_TOKEN`` set, ``/ops`` and
``/metrics`` answer only requests carrying ``Authorization: Bearer <token>`` (Prometheus scrape
configs send it with ``authorization: {credentials_file: …}``); ``/health`` and ``/ready`` stay
open for probes and reveal nothing but states.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
from typing import TYPE_CHECKING, Any

from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from app.catalog import internal_partitions
from app.client_config import secret
from app.domain.exceptions import escalation
from app.engine import api
from app.engine.sensors import cache_labels
from app.flows.step import rows
from app.observe import blocked, metrics, ops_page, stalls
from app.observe.registry_probe import registry_reachable
from app.observe.source_schemas import unreadable_sources
from app.observe.topic_presence import missing_topics

if TYPE_CHECKING:
    from app.engine.bootstrap import Engine

log = logging.getLogger(__name__)


def register(engine: Engine) -> None:
    """Faust's sensors on the service's registry (what setup_prometheus_sensors does, without its open
    page) and the worker's pages, on the engine's app."""
    app, settings, tables = engine.app, engine.settings, engine.tables
    app.monitor = PrometheusMonitor(metrics=FaustMetrics.create(REGISTRY, "faust"))
    cache_labels(app.monitor)
    token = secret(settings, "web_token")  # read once: a file that changes needs a restart
    routes = escalation.load(settings.escalation_rules)

    def denied(view: View, request: Request) -> Response | None:
        """None when the request may see a guarded page; else the 401 to answer."""
        if token is None:
            return None
        sent = request.headers.get("Authorization", "").encode()
        if hmac.compare_digest(sent, f"Bearer {token}".encode()):
            return None
        challenge = {"WWW-Authenticate": 'Bearer realm="crm-erp-sync"'}
        return view.json({"error": "unauthorized"}, status=401, headers=challenge)

    async def readiness() -> dict[str, Any]:
        """What ``/ready`` answers and ``/ops`` shows."""
        assigned = len(app.consumer.assignment())
        recovered = bool(app.tables.actives_ready)
        registry = await registry_reachable()
        missing = await missing_topics()
        unreadable = await unreadable_sources()
        held = blocked.held()
        stuck = stalls.stuck()
        ready = (
            bool(assigned)
            and recovered
            and not app.rebalancing
            and registry
            and not missing
            and not unreadable
            and not held
            and not stuck
        )
        return {
            "ready": ready,
            "assigned_partitions": assigned,
            "tables_recovered": recovered,
            "rebalancing": app.rebalancing,
            "registry_reachable": registry,
            "missing_topics": missing,
            "unreadable_source_schemas": unreadable,
            "quarantine_blocked": held,
            "stuck_partitions": stuck,
        }

    api.register(engine, denied)  # /api/v1/…: the decision-boundary API, behind the same token

    @app.page("/metrics")
    class Metrics(View):
        """Faust's sensors and the service's metrics, in the Prometheus text format."""

        async def get(self, request: Request) -> Response:
            refused = denied(self, request)
            if refused is not None:
                return refused
            return self.bytes(generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/health")
    class Health(View):
        """The process is alive and its event loop answers."""

        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok", "app_id": app.conf.id})

    @app.page("/ready")
    class Ready(View):
        """Partitions assigned, tables recovered, no rebalance in progress, registry answering, every
        catalog topic present, every CDC writer schema readable."""

        async def get(self, request: Request) -> Response:
            body = await readiness()
            return self.json(body, status=200 if body["ready"] else 503)

    @app.page("/ops")
    class Ops(View):
        """The operations page (HTML, for people): pipeline status, open exceptions, open drift alerts."""

        async def get(self, request: Request) -> Response:
            refused = denied(self, request)
            if refused is not None:
                return refused
            ready = await readiness()
            ledger = tables.exception_ledger
            topic = ledger.changelog_topic_name
            actives = app.assignor.assigned_actives()
            status = ops_page.PipelineStatus(
                ready=ready["ready"],
                assigned_partitions=ready["assigned_partitions"],
                tables_recovered=ready["tables_recovered"],
                rebalancing=ready["rebalancing"],
                registry_reachable=ready["registry_reachable"],
                missing_topics=tuple(ready["missing_topics"]),
                unreadable_source_schemas=tuple(ready["unreadable_source_schemas"]),
                stuck_partitions=tuple(ready["stuck_partitions"]),
                quarantine_blocked=tuple(f"{k}: {v}" for k, v in ready["quarantine_blocked"].items()),
                table_partitions=tuple(sorted(tp.partition for tp in actives if tp.topic == topic)),
                total_table_partitions=ledger.partitions
                or internal_partitions(settings.topic_partitions, settings.topic_profile),
                events_processed=_total(metrics.events_consumed),
                commands_emitted=_total(metrics.commands_emitted),
                worker=f"{settings.web_host}:{settings.web_port}",
            )
            exceptions = alerts = None
            unreadable = 0
            if ready["tables_recovered"] and not ready["rebalancing"]:
                try:  # the rows of this worker's active partitions (the timers in app/agents/live.py read them alike)
                    exceptions, bad_exceptions = ops_page.open_exceptions(list(rows(ledger.items())))
                    alerts, bad_alerts = ops_page.open_alerts(list(tables.open_alerts.items()))
                    unreadable = bad_exceptions + bad_alerts
                except Exception:
                    log.exception("/ops: reading the exception ledger or the open alerts failed")
                    exceptions = alerts = None
            page = ops_page.render(status, exceptions, alerts, dt.datetime.now(dt.UTC), routes, unreadable)
            return self.html(page, headers={"Cache-Control": "no-store"})


def _total(counter) -> int:
    """A labelled counter summed over its labels (this process's count since it started)."""
    return int(sum(s.value for m in counter.collect() for s in m.samples if s.name.endswith("_total")))
