"""The benchmark runs end to end on the real platform (tiny sizes: a smoke test, not a measurement)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.client_config import admin_client, security_env
from app.ops import bench
from app.settings import REPO_ROOT, Settings

pytestmark = pytest.mark.integration


def test_the_benchmark_runs_every_phase_and_compares_only_runs_that_sent_the_same_commands(
    platform: Settings, tmp_path
):
    out = tmp_path / "bench.json"
    results = bench.run(platform, deals=40, out=out, say=lambda _: None, latency_seconds=3.0)
    assert json.loads(out.read_text()) == results
    assert results["a_io_events_per_s"] > 0 and results["b_python_events_per_s"] > 0
    assert results["b_commands"] == 40  # the reference data first: every deal ordered, as by the worker
    for workers in (1, 2):
        run = results[f"c_service_{workers}w"]
        assert run["workers"] == workers and run["same_commands_as_b"]
        assert run["command_ids_sha256"] == results["b_command_ids_sha256"]
    assert results["b2_same_commands_as_b"] and results["ratio_c_over_b2"] > 0
    assert results["ratio_c_over_b"] > 0 and results["ratio_2w_over_1w"] > 0
    assert results["latency_at_half_rate"]["deals"] >= 1
    assert results["f_faust_cap"]["same_commands_as_b"] and results["ratio_c_over_f"] > 0
    assert len(results["settle_s"]) == 6  # after the ceilings, the Faust cap, both service and both latency runs


def _workers_of(prefix_part: str) -> list[int]:
    """Worker processes whose topic prefix contains ``prefix_part``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if b"worker" in cmdline and b"CRM_ERP_TOPIC_PREFIX=bench" in environ and prefix_part.encode() in environ:
            found.append(int(proc.name))
    return found


def test_a_bench_stopped_by_sigterm_stops_its_workers_and_deletes_its_topics(platform: Settings, tmp_path):
    env = {
        **os.environ,
        **security_env(platform),
        "CRM_ERP_KAFKA_BOOTSTRAP": platform.kafka_bootstrap,
        "CRM_ERP_REGISTRY_URL": platform.registry_url,
    }
    cmd = [sys.executable, "-m", "app.cli", "bench", "--deals", "3000", "--out", str(tmp_path / "b.json")]
    proc = subprocess.Popen(cmd, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not (workers := _workers_of("-service1.")) and time.monotonic() < deadline:
            assert proc.poll() is None, "the bench ended before its service run started"
            time.sleep(0.5)
        assert workers, "no service worker started within 240 s"
        admin = admin_client(platform)
        topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith("bench") and "-service1." in t]
        assert topics
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not _workers_of("-service1."), "a worker outlived the bench"
    left = set(admin.list_topics(timeout=10).topics) & set(topics)
    assert not left, f"topics outlived the bench: {sorted(left)[:5]}"
