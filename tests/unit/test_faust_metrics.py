"""The label cache on Faust's Prometheus sensor (app/engine/sensors.py) against the pinned Faust."""

from __future__ import annotations

from types import SimpleNamespace

from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP
from prometheus_client import CollectorRegistry, generate_latest

from app.engine.sensors import CachedLabels, cache_labels


class Stream:
    """What the monitor reads of a stream (hashable, as Faust's are)."""

    def __init__(self, shortlabel: str) -> None:
        self.shortlabel, self.task_owner = shortlabel, Stream.Task()

    class Task:
        pass


def _exercise(monitor: PrometheusMonitor) -> None:
    table, producer = SimpleNamespace(name="deals"), SimpleNamespace()
    streams = [Stream("Stream: Topic: crm.opportunity|crm.account"), Stream("Stream: Topic: sync.deal-changes")]
    for offset in range(3):
        for stream in streams:
            state = monitor.on_stream_event_in(TP("t", 0), offset, stream, SimpleNamespace())
            monitor.on_stream_event_out(TP("t", 0), offset, stream, SimpleNamespace(), state)
        for tp in (TP("crm.opportunity", 0), TP("crm.opportunity", 1), TP("crm.account", 0)):
            monitor.on_message_in(tp, offset, SimpleNamespace())
            monitor.on_table_get(table, b"k")
            monitor.on_table_set(table, b"k", b"v")
            monitor.on_table_del(table, b"k")
            monitor.on_send_initiated(producer, tp.topic, None, 1, 1)


def _series(registry: CollectorRegistry) -> list[str]:
    """The exposition without what differs between any two registries: ``_created`` timestamps and
    the measured event runtimes (their count stays)."""
    timed = ("faust_events_runtime_ms_sum", "faust_events_runtime_ms_bucket")
    lines = generate_latest(registry).decode().splitlines()
    return [line for line in lines if "_created" not in line and not line.startswith(timed)]


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
    assert 'stream="stream.topic_sync.deal-changes.events"' in "\n".join(_series(cached_registry))


def test_removed_series_are_not_served_from_the_cache() -> None:
    monitor, registry = _monitor(True)
    _exercise(monitor)
    monitor._clear_partition_related_metrics()  # what Faust does on a rebalance
    assert b'topic="crm.account"' not in generate_latest(registry)
    monitor.on_message_in(TP("crm.account", 0), 7, SimpleNamespace())
    assert b'faust_messages_received_per_topic_total{topic="crm.account"} 1.0' in generate_latest(registry)


def test_a_stream_s_label_is_worked_out_once() -> None:
    monitor, _ = _monitor(False)
    calls = []
    own = monitor._stream_label
    monitor._stream_label = lambda stream: calls.append(stream) or own(stream)
    cache_labels(monitor)
    _exercise(monitor)
    assert len(calls) == 2  # two streams, three events each
