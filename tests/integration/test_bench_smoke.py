"""The benchmark runs end to end on the real platform (tiny sizes: a smoke test, not a measurement)."""

from __future__ import annotations

import json

import pytest

from app.ops import bench
from app.settings import Settings

pytestmark = pytest.mark.integration


def test_the_benchmark_runs_every_phase_and_writes_its_figures(platform: Settings, tmp_path):
    out = tmp_path / "bench.json"
    results = bench.run(platform, deals=40, out=out, say=lambda _: None, latency_seconds=3.0)
    assert json.loads(out.read_text()) == results
    assert results["a_io_events_per_s"] > 0 and results["b_python_events_per_s"] > 0
    assert {r["workers"] for r in (results["c_service_1w"], results["c_service_2w"])} == {1, 2}
    assert results["latency_at_half_rate"]["deals"] >= 1
