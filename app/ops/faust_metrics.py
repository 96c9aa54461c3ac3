"""Faust's Prometheus sensor with each label set looked up once, not on every event.

faust-streaming 0.15's ``PrometheusMonitor`` calls ``metric.labels(...)`` for every message in,
event, table get/set/delete and send. prometheus-client validates the labels and takes a lock on
each call. The worker makes several of these calls per CDC event. Wrapping the labelled metrics
keeps the monitor's own code and its series exactly as they are. It hands back the child metric
remembered for a label set. The one Faust internal relied on is the monitor's ``_metrics`` tuple.
"""

from __future__ import annotations

from typing import Any

from prometheus_client.metrics import MetricWrapperBase


class CachedLabels:
    """A labelled metric whose ``labels(...)`` children are remembered (and forgotten on clear/remove)."""

    def __init__(self, metric: MetricWrapperBase) -> None:
        self._metric = metric
        self._children: dict[tuple, Any] = {}

    def labels(self, *values: Any, **labels: Any) -> Any:
        key = (values, tuple(labels.items()))
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._metric.labels(*values, **labels)
        return child

    def clear(self) -> None:
        self._children.clear()
        self._metric.clear()

    def remove(self, *values: Any) -> None:
        self._children.clear()
        self._metric.remove(*values)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._metric, name)


def cache_labels(monitor: Any) -> None:
    """Wrap every labelled metric of a Faust ``PrometheusMonitor`` in ``CachedLabels``."""
    metrics = monitor._metrics
    wrapped = {
        name: CachedLabels(m)
        for name, m in metrics._asdict().items()
        if isinstance(m, MetricWrapperBase) and m._labelnames
    }
    monitor._metrics = metrics._replace(**wrapped)
