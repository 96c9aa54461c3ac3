"""Helpers for the fault-injection tests: a fast CDC feed, a command follower, committed offsets, a private broker."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Message, TopicPartition

from app.client_config import kafka_config
from app.ops import bench
from app.platform import local
from app.settings import BROKER_PORT_STEP, Settings, local_bootstrap
from tests.support.kafka import Sandbox, free_port

CRM_TOPICS = [f"crm.public.{t}" for t in bench.CRM]


def cdc_feed(sandbox: Sandbox) -> bench.Env:
    """The benchmark's pre-encoded producer (``Env.produce``) for this sandbox's CRM topics.

    The sandbox's topics must exist (``sandbox.create_all()``); the CDC schemas are registered here,
    as a producer would.
    """
    env = bench.Env(sandbox.settings, sandbox.tmp / "feed")
    env.register_cdc_encoders()
    return env


class Follower:
    """Reads a topic from the beginning in a thread, keeping every message: progress for the tests' faults."""

    def __init__(self, sandbox: Sandbox, name: str) -> None:
        self.messages: list[Message] = []
        self.keys: set[bytes] = set()
        self._stop = threading.Event()
        self._consumer = Consumer(
            kafka_config(
                sandbox.settings,
                {
                    "group.id": f"{sandbox.prefix}follower-{uuid.uuid4().hex[:6]}",
                    "auto.offset.reset": "earliest",
                    "enable.auto.commit": False,
                },
            )
        )
        self._consumer.subscribe([sandbox.topic(name)])
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for m in self._consumer.consume(1000, timeout=0.3):
                if m.error() is None:
                    self.messages.append(m)
                    self.keys.add(m.key())
        self._consumer.close()

    def wait_keys(self, count: int, timeout: float, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while len(self.keys) < count:
            assert time.monotonic() < deadline, f"only {len(self.keys)} of {count} keys {what} within {timeout}s"
            time.sleep(0.1)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


def unprocessed(sandbox: Sandbox, names: list[str]) -> dict[str, int]:
    """Per input partition, how far the worker group's committed offset is behind the end (0: all done)."""
    s = sandbox.settings
    consumer = Consumer(kafka_config(s, {"group.id": s.app_id, "enable.auto.commit": False}))
    try:
        metadata = consumer.list_topics(timeout=30)
        parts = [
            TopicPartition(sandbox.topic(n), p)
            for n in names
            for p in sorted(metadata.topics[sandbox.topic(n)].partitions)
        ]
        committed = {(tp.topic, tp.partition): tp.offset for tp in consumer.committed(parts, timeout=30)}
        behind = {}
        for tp in parts:
            _, high = consumer.get_watermark_offsets(tp, timeout=30)
            done = max(committed[(tp.topic, tp.partition)], 0)  # -1001: nothing committed yet
            if high > done:
                behind[f"{tp.topic}/{tp.partition}"] = high - done
        return behind
    finally:
        consumer.close()


def wait_all_committed(sandbox: Sandbox, names: list[str], timeout: float) -> None:
    """Until the worker group has committed every input partition to its end (Faust commits every few s)."""
    deadline = time.monotonic() + timeout
    while behind := unprocessed(sandbox, names):
        assert time.monotonic() < deadline, f"input left unprocessed after {timeout}s (messages behind): {behind}"
        time.sleep(1)


def _free_ports(count: int, brokers: int) -> list[int]:
    """``count`` node-1 ports whose ``BROKER_PORT_STEP`` offsets for every other node are free too."""
    found: list[int] = []
    while len(found) < count:
        port = free_port()
        block = [port + BROKER_PORT_STEP * k for k in range(brokers)]
        if port not in found and not any(local.port_open(p) or p > 65535 for p in block[1:]):
            found.append(port)
    return found


class PrivateBroker:
    """A private KRaft broker, or a cluster of ``brokers`` nodes, on free ports with its own data,
    sharing the jar cache.

    Started with ``app.platform.local``'s own start-up (same server.properties, same jars), so it is the
    platform the tests normally use, only private: a test may stop, kill and restart it without
    disturbing anyone else on the shared platform. The schema registry stays the shared one (it keeps
    schemas in the shared broker, not in this one).
    """

    def __init__(self, base: Settings, root: Path, brokers: int = 1, heap: str = "256m") -> None:
        root.mkdir(parents=True, exist_ok=True)
        cache = root / "cache"
        if not cache.exists():
            cache.symlink_to(local.Layout(base).cache.resolve(), target_is_directory=True)
        port, controller, sasl_ssl, ssl = _free_ports(4, brokers)
        self.settings = base.model_copy(
            update={
                "platform_dir": root,
                "kafka_brokers": brokers,
                "kafka_port": port,
                "kafka_bootstrap": local_bootstrap(port, brokers),
                "controller_port": controller,
                "kafka_sasl_ssl_port": sasl_ssl,
                "kafka_ssl_port": ssl,
                "kafka_heap": heap,
                "topic_profile": "production" if brokers >= 3 else base.topic_profile,
            }
        )
        self.layout = local.Layout(self.settings)

    def start(self) -> None:
        """Start every node that is not running and wait until the cluster lists them all."""
        local._start_kafka(self.settings, self.layout, say=lambda _: None)

    def stop(self) -> None:
        """SIGTERM (a controlled shutdown), SIGKILL only if it has not stopped within 30 s."""
        local.stop_kafka(self.settings, say=lambda _: None)

    def kill(self, node_id: int) -> None:
        """``kill -9`` one node: no controlled shutdown, no leadership handed over."""
        pid = self.layout.nodes[node_id - 1].proc.pid()
        assert pid is not None, f"node {node_id} is not running"
        os.kill(pid, signal.SIGKILL)
        while self.layout.nodes[node_id - 1].proc.pid() is not None:
            time.sleep(0.1)
