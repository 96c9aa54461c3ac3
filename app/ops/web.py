"""The worker's HTTP endpoints: ``/metrics`` (Faust's sensors + the service's), ``/health``, ``/ready``.

Table contents are never served (``web_tables_enabled=False``): they hold customer data.
"""

from __future__ import annotations

from faust.sensors.prometheus import setup_prometheus_sensors
from faust.web import Request, Response, View
from prometheus_client import REGISTRY

from app.faust_app import app

setup_prometheus_sensors(app, pattern="/metrics", registry=REGISTRY, name_prefix="faust")


@app.page("/health")
class Health(View):
    """The process is alive and its event loop answers."""

    async def get(self, request: Request) -> Response:
        return self.json({"status": "ok", "app_id": app.conf.id})


@app.page("/ready")
class Ready(View):
    """Partitions assigned and no rebalance in progress: the worker is consuming."""

    async def get(self, request: Request) -> Response:
        assigned = len(app.consumer.assignment())
        ready = bool(assigned) and not app.rebalancing
        body = {"ready": ready, "assigned_partitions": assigned, "rebalancing": app.rebalancing}
        return self.json(body, status=200 if ready else 503)
