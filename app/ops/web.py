"""The worker's HTTP endpoints: ``/metrics`` (Faust's sensors + the service's), ``/health``, ``/ready``.

Table contents are never served (``web_tables_enabled=False``): they hold customer data.
"""

from __future__ import annotations

from faust.sensors.prometheus import setup_prometheus_sensors
from faust.web import Request, Response, View
from prometheus_client import REGISTRY

from app.faust_app import app
from app.ops.registry_probe import registry_reachable

setup_prometheus_sensors(app, pattern="/metrics", registry=REGISTRY, name_prefix="faust")


@app.page("/health")
class Health(View):
    """The process is alive and its event loop answers."""

    async def get(self, request: Request) -> Response:
        return self.json({"status": "ok", "app_id": app.conf.id})


@app.page("/ready")
class Ready(View):
    """Partitions assigned, tables recovered, no rebalance in progress, registry answering."""

    async def get(self, request: Request) -> Response:
        assigned = len(app.consumer.assignment())
        recovered = bool(app.tables.actives_ready)
        registry = await registry_reachable()
        ready = bool(assigned) and recovered and not app.rebalancing and registry
        body = {
            "ready": ready,
            "assigned_partitions": assigned,
            "tables_recovered": recovered,
            "rebalancing": app.rebalancing,
            "registry_reachable": registry,
        }
        return self.json(body, status=200 if ready else 503)
