"""The label cache on Faust's Prometheus sensor (app/ops/faust_metrics.py) against the pinned Faust."""

from __future__ import annotations

from types import SimpleNamespace

from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP
from prometheus_client import CollectorRegistry, generate_latest

from app.ops.faust_metrics import CachedLabels, cache_labels


def _exercise(monitor: PrometheusMonitor) -> None:
    table, producer = SimpleNamespace(name="deals"), SimpleNamespace()
    for offset in range(3):
        for tp in (TP("crm.opportunity", 0), TP("crm.opportunity", 1), TP("crm.account", 0)):
            monitor.on_message_in(tp, offset, SimpleNamespace())
            monitor.on_table_get(table, b"k")
            monitor.on_table_set(table, b"k", b"v")
            monitor.on_table_del(table, b"k")
            monitor.on_send_initiated(producer, tp.topic, None, 1, 1)


def _series(registry: CollectorRegistry) -> list[str]:
    """The exposition without its ``_created`` timestamps (they differ between any two registries)."""
    return [line for line in generate_latest(registry).decode().splitlines() if "_created" not in line]


def _monitor(cached: bool) -> tuple[PrometheusMonitor, CollectorRegistry]:
    registry = CollectorRegistry()
    monitor = PrometheusMonitor(metrics=FaustMetrics.create(registry, "faust"))
    if cached:
        cache_labels(monitor)
    return monitor, registry


def test_the_cached_sensor_exposes_exactly_what_faust_s_own_does() -> None:
    (plain, plain_registry), (cached, cached_registry) = _monitor(False), _monitor(True)
    _exercise(plain)
    _exercise(cached)
    assert _series(cached_registry) == _series(plain_registry)
    assert isinstance(cached._metrics.table_operations, CachedLabels)


def test_removed_series_are_not_served_from_the_cache() -> None:
    monitor, registry = _monitor(True)
    _exercise(monitor)
    monitor._clear_partition_related_metrics()  # what Faust does on a rebalance
    assert b'topic="crm.account"' not in generate_latest(registry)
    monitor.on_message_in(TP("crm.account", 0), 7, SimpleNamespace())
    assert b'faust_messages_received_per_topic_total{topic="crm.account"} 1.0' in generate_latest(registry)
