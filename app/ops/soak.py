"""``crm-erp-sync soak``: does state stay bounded? Many deals settle while one worker runs.

Each deal is opened, gets three lines, closes won, then is lost: it settles (ordered and cancelled,
or, when the close overtook its lines, never ordered). With a short ``CRM_ERP_RETENTION_S`` the
worker tombstones every settled deal shortly after, from every table. The deals are produced in
steps; after each step, once the worker has committed every input and the deals of the step have
retired, the soak records the worker's resident memory and the live keys of each table (read from
the tables' changelogs: the last value per key, tombstones dropping keys). Bounded state shows as
key counts that stop growing with the deals and memory that levels off.
"""

from __future__ import annotations

import itertools
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from app.engine.reader import Snapshot, behind, last_values
from app.flows.step import rows
from app.ops.bench import CRM, Env
from app.ops.worker_process import WorkerProcess
from app.settings import Settings
from app.sim import debezium as dbz
from app.sim import workload

INPUTS = [f"crm.public.{t}" for t in CRM] + ["sync.deal-changes"]
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


def _behind(s: Settings, names: list[str]) -> int:
    """Messages of ``names`` the worker's group has not committed yet."""
    return behind(s, s.app_id, [s.topic(n) for n in names])


def _keys(s: Settings) -> dict[str, int]:
    """Live keys per table, and the outbox rows of all of them (``outbox``)."""
    counts, outbox = {}, 0
    with Snapshot(s, "soak") as snapshot:
        for table in TABLES:
            latest = last_values(snapshot, f"{s.app_id}-{table}-changelog")
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
    results: dict[str, Any] = {"retention_s": retention_s, "events_per_deal": 6, "steps": []}
    stream = workload.settling_deals(lsn, steps[-1])
    produced, started = 0, time.monotonic()
    try:
        for target in steps:
            env.produce(itertools.islice(stream, (target - produced) * 6))  # 6 CDC events per deal
            produced = target
            deadline = time.monotonic() + 3600
            while (behind := _behind(env.settings, INPUTS)) > 0:
                if worker.proc is None or worker.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{behind} input messages not processed; the worker:\n{worker.tail()}")
                time.sleep(2)
            time.sleep(min(settle_s, retention_s * 2 + 10))  # the last deals of the step retire
            while _behind(env.settings, ["sync.deal-changes", "sync.row-index", "sync.parity-facts"]) > 0:
                time.sleep(2)
            step: dict[str, Any] = {"deals": target, "seconds": round(time.monotonic() - started)}
            step |= {"rss_mb": _rss_mb(worker), "keys": _keys(env.settings)}
            results["steps"].append(step)
            say(f"{target:>6} deals after {step['seconds']:>5} s: RSS {step['rss_mb']} MB, keys {step['keys']}")
        results["peak_rss_mb"] = worker.peak_rss_mb()
    finally:
        worker.stop()
        env.drop()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    say(f"peak RSS {results.get('peak_rss_mb')} MB; written to {out}")
    return results
