"""``crm-erp-sync api-latency``: p50/p99 of the decision-boundary API against a running worker.

The API answers at close time, while a salesperson waits: its latency is a figure to know. The
worker is warmed first (every path once), then ``requests`` GETs are sent one after another (a
person's request, not a load test) round-robin over the paths; every answer must be 200, else the
figures would describe error pages.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import httpx

from app.domain.errors import ServiceError


class ApiLatencyError(ServiceError):
    """An answer was not 200: the figures would not describe the API."""


@dataclass(frozen=True, slots=True)
class Latency:
    requests: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    def render(self) -> str:
        return f"{self.requests} requests: p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, max {self.max_ms:.1f} ms"


def measure(base_url: str, paths: list[str], requests: int = 1000, token: str | None = None) -> Latency:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    timings: list[float] = []
    with httpx.Client(base_url=base_url, headers=headers, timeout=10) as client:
        for path in paths:  # warm: connections, the owner's routing, the process's caches
            _get(client, path)
        for n in range(requests):
            started = time.perf_counter()
            _get(client, paths[n % len(paths)])
            timings.append((time.perf_counter() - started) * 1000)
    cuts = statistics.quantiles(timings, n=100, method="inclusive")
    return Latency(requests, cuts[49], cuts[98], max(timings))


def _get(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    if response.status_code != 200:
        raise ApiLatencyError(f"GET {path}: {response.status_code} {response.text[:200]}")
