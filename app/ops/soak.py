"""``crm-erp-sync soak``: does state stay bounded? Many deals settle while one worker runs.

Each deal is opened, gets three lines, closes won (a create), then is lost (a cancel): it settles.
With a short ``CRM_ERP_RETENTION_S`` the worker tombstones every settled deal shortly after, from
every table. The deals are produced in steps; after each step, once the worker has sent the cancel
of every deal so far, the soak records the worker's resident memory and the live keys of each
table (read from the tables' changelogs: the last value per key, tombstones dropping keys). Bounded
state shows as key counts that stop growing with the deals and memory that levels off.
"""

from __future__ import annotations

import itertools
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from app.flows.step import rows
from app.ops.bench import COMMANDS, Env
from app.ops.reconcile import scan
from app.ops.worker_process import WorkerProcess
from app.settings import Settings
from app.sim import debezium as dbz
from app.sim import workload

TABLES = (
    "deals",
    "parked-deals",
    "sla-deadlines",
    "row-index",
    "parity-windows",
    "customer-views",
    "exception-ledger",
    "escalation-due",
    "open-drift-alerts",
)


def _rss_mb(proc: WorkerProcess) -> float | None:
    try:
        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def _cancels(consumer, seen: set[bytes]) -> int:
    for msg in consumer.consume(5000, timeout=0.5):
        if not msg.error() and msg.value() and b"CancelSalesOrder" in msg.value():
            seen.add(msg.key())
    return len(seen)


def _keys(s: Settings) -> dict[str, int]:
    """Live keys per table, and the outbox rows of all of them (``outbox``)."""
    counts, outbox = {}, 0
    for table in TABLES:
        latest: dict[bytes, bytes] = {}
        scan(s, f"{s.app_id}-{table}-changelog", latest)
        data = dict(rows(latest.items()))
        counts[table], outbox = len(data), outbox + len(latest) - len(data)
    return counts | {"outbox": outbox}


def run(
    base: Settings, steps: list[int], retention_s: float, out: Path, settle_s: float = 60.0, say=print
) -> dict[str, Any]:
    """``steps``: cumulative deal counts to measure at (e.g. 10 000, 25 000, 50 000)."""
    root = Path(tempfile.mkdtemp(prefix="crm-erp-soak-"))
    env = Env.fresh(base, root, "soak")
    lsn = dbz.Lsn(ts_ms=int(time.time() * 1000))
    env.produce(workload.reference_data(lsn))
    worker_env = env.worker_env(0) | {"CRM_ERP_RETENTION_S": str(retention_s), "CRM_ERP_PARITY_CHECK_S": "2"}
    worker = WorkerProcess(worker_env, root / "worker.log").start()
    consumer = env.consumer([COMMANDS])
    seen: set[bytes] = set()
    results: dict[str, Any] = {"retention_s": retention_s, "events_per_deal": 6, "steps": []}
    stream = workload.settling_deals(lsn, steps[-1])
    produced, started = 0, time.monotonic()
    try:
        for target in steps:
            env.produce(itertools.islice(stream, (target - produced) * 6))  # 6 CDC events per deal
            produced = target
            deadline = time.monotonic() + 3600
            while _cancels(consumer, seen) < target:
                if worker.proc is None or worker.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{len(seen)} of {target} deals cancelled; the worker:\n{worker.tail()}")
            time.sleep(min(settle_s, retention_s * 2 + 10))  # the last deals of the step retire
            step: dict[str, Any] = {"deals": target, "seconds": round(time.monotonic() - started)}
            step |= {"rss_mb": _rss_mb(worker), "keys": _keys(env.settings)}
            results["steps"].append(step)
            say(f"{target:>6} deals after {step['seconds']:>5} s: RSS {step['rss_mb']} MB, keys {step['keys']}")
        results["peak_rss_mb"] = worker.peak_rss_mb()
    finally:
        consumer.close()
        worker.stop()
        env.drop()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    say(f"peak RSS {results.get('peak_rss_mb')} MB; written to {out}")
    return results
