"""Faust's Prometheus sensor with each label set looked up once, not on every event.

faust-streaming 0.15's ``PrometheusMonitor`` calls ``metric.labels(...)`` for every message in,
event, table get/set/delete and send. prometheus-client validates the labels and takes a lock on
each call. The worker makes several of these calls per CDC event. Wrapping the labelled metrics
keeps the monitor's own code and its series exactly as they are. It hands back the child metric
remembered for a label set. The monitor also derives each event's stream label from the stream's
description with a regular expression; that label is remembered per stream. The Faust internals
relied on are the monitor's ``_metrics`` tuple and its ``_stream_label`` method.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from weakref import WeakKeyDictionary

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
    monitor._stream_label = _remembered(monitor._stream_label)


def _remembered(stream_label: Callable[[Any], str]) -> Callable[[Any], str]:
    labels: WeakKeyDictionary[Any, str] = WeakKeyDictionary()  # as the monitor's own stream lookup

    def label(stream: Any) -> str:
        found = labels.get(stream)
        if found is None:
            found = labels[stream] = stream_label(stream)
        return found

    return label
