"""``crm-erp-sync demo``: the whole lifecycle on the local platform in one command.

Brings the platform up, gives the run its own topic prefix (so runs never see each other's data),
applies topics and schemas, starts a worker with demo-sized SLAs, then runs the simulated CRM for
a bounded time while the simulated ERP answers the commands. Once the pipeline has settled it
reads what the service produced and prints the summary (``app.ops.demo_report``). The run's
topics are deleted at the end unless ``--keep`` is given, which also leaves the worker running.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from app.catalog import default_catalog
from app.client_config import security_env
from app.contracts import default_index
from app.engine.reader import Snapshot
from app.ops import schemas_admin, topics_admin
from app.ops.demo_report import Observed, Sample, render, summarise
from app.ops.simulate import run_crm, run_erp
from app.ops.trace import AvroReader
from app.ops.worker_process import WorkerProcess
from app.platform import local
from app.settings import Settings
from app.sim.crm import CrmMix, CrmSimulator
from app.sim.erp_system import ErpConfig, ErpSystem

# Seconds, not the production defaults, so a one-minute demo shows every kind of alert.
DEMO_WORKER_ENV = {
    "CRM_ERP_SLA_ACCEPT_S": "15",
    "CRM_ERP_SLA_SHIP_S": "20",
    "CRM_ERP_SLA_INVOICE_S": "20",
    "CRM_ERP_SLA_PAYMENT_S": "30",
    "CRM_ERP_PARITY_CHECK_S": "1",
    "CRM_ERP_PARITY_WINDOWS": "30s=30",
    "CRM_ERP_VALIDATION_GRACE_S": "5",
    "CRM_ERP_ESCALATION_CHECK_S": "5",
}
SETTLE_QUIET_S = 10.0
SETTLE_MAX_S = 120.0


def _free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _worker_env(s: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_ERP_")}
    env.update(security_env(s))
    env.update(
        CRM_ERP_KAFKA_BOOTSTRAP=s.kafka_bootstrap,
        CRM_ERP_REGISTRY_URL=s.registry_url,
        CRM_ERP_TOPIC_PREFIX=s.topic_prefix,
        CRM_ERP_APP_ID=s.app_id,
        CRM_ERP_DATA_DIR=str(s.data_dir),
        CRM_ERP_WEB_PORT=str(s.web_port),
        **DEMO_WORKER_ENV,
    )
    return env


def samples(port: int) -> list[Sample]:
    """The worker's metric samples (none when the worker does not answer)."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return []
    return [Sample(s.name, s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples]


def scrape(port: int) -> dict[str, float]:
    """The worker's metrics summed per name (0 when the worker does not answer)."""
    sums: dict[str, float] = {}
    for sample in samples(port):
        sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
    return sums


def _progress(port: int, stop: threading.Event, say: Callable[[str], None], every_s: float = 5.0) -> None:
    while not stop.wait(every_s):
        m = scrape(port)
        say(
            f"worker: {m.get('crm_erp_sync_events_consumed_total', 0):.0f} events in, "
            f"{m.get('crm_erp_sync_commands_emitted_total', 0):.0f} commands out, "
            f"{m.get('crm_erp_sync_exceptions_raised_total', 0):.0f} exceptions, "
            f"{m.get('crm_erp_sync_quarantined_total', 0):.0f} quarantined, "
            f"{m.get('crm_erp_sync_drift_alerts_total', 0):.0f} alert records"
        )


def _settle(port: int, erp: ErpSystem, say: Callable[[str], None]) -> None:
    """Wait until no command has left the worker for a while and the ERP has nothing scheduled."""
    started = time.monotonic()
    last, quiet_since = -1.0, time.monotonic()
    while time.monotonic() - started < SETTLE_MAX_S:
        out = scrape(port).get("crm_erp_sync_commands_emitted_total", 0.0)
        if out != last or erp.pending() or erp.customers.pending():
            last, quiet_since = out, time.monotonic()
        elif time.monotonic() - quiet_since >= SETTLE_QUIET_S:
            return
        time.sleep(1)
    say(f"demo: still busy after {SETTLE_MAX_S:.0f} s; summarising what has arrived")


def _read(snapshot: Snapshot, s: Settings, name: str) -> list:
    return list(snapshot.messages(s.topic(name)))


def observe(s: Settings, port: int) -> Observed:
    """Read what the service produced under the run's prefix (from the start to now)."""
    reader, snapshot = AvroReader(s), Snapshot(s, "demo")
    metrics = samples(port)
    hits = sum(m.value for m in metrics if m.name == "crm_erp_sync_dedup_hits_total")
    seen = Observed(dedup_hits=hits, metrics=metrics)
    try:
        first: dict[str, float] = {}  # a re-sent create (re-issue, retry, redelivery) is not a new order
        for msg in _read(snapshot, s, "erp.commands.sales-order"):
            value = reader.decode(msg.value())
            seen.sales_orders.append(value)
            body, envelope = value["command"], value["envelope"]
            source_ts = envelope["lineage"]["source_ts"]
            if isinstance(body, tuple) and body[0].endswith("CreateSalesOrder") and source_ts is not None:
                first.setdefault(envelope["command_id"], msg.timestamp()[1] - source_ts.timestamp() * 1000)
        seen.create_latencies_ms = list(first.values())
        seen.customers = [reader.decode(m.value()) for m in _read(snapshot, s, "erp.commands.customer")]
        seen.crm_updates = [reader.decode(m.value()) for m in _read(snapshot, s, "crm.commands.update")]
        seen.account_updates = [reader.decode(m.value()) for m in _read(snapshot, s, "crm.commands.account-update")]
        seen.renewals = [reader.decode(m.value()) for m in _read(snapshot, s, "crm.commands.renewal")]
        seen.exceptions = [reader.decode(m.value()) for m in _read(snapshot, s, "sync.exceptions")]
        seen.resolutions = [reader.decode(m.value()) for m in _read(snapshot, s, "sync.exception-resolutions")]
        seen.alerts = [reader.decode(m.value()) for m in _read(snapshot, s, "sync.drift-alerts")]
        for m in _read(snapshot, s, "sync.dead-letter"):
            seen.dead_letter_reasons.append(dict(m.headers() or []).get("x-reason", b"?").decode())
    finally:
        snapshot.close()
    return seen


def run(
    base: Settings,
    seconds: float = 60.0,
    rate: float = 40.0,
    seed: int = 7,
    keep: bool = False,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    local.up(base, say=lambda line: say(f"platform: {line}"))
    run_id = uuid.uuid4().hex[:6]
    prefix = f"demo-{run_id}."
    port = base.web_port if _free(base.web_port) else 6166
    s = base.model_copy(
        update={
            "topic_prefix": prefix,
            "app_id": f"{prefix}crm-erp-sync",
            "data_dir": base.platform_dir / "demo" / run_id,
            "web_port": port,
        }
    )
    topics_admin.apply(s, default_catalog(), say=lambda _: None)
    schemas_admin.register(s, default_catalog(), default_index(), say=lambda _: None)
    say(f"demo: topics and schemas ready under prefix {prefix!r}; starting the worker…")
    worker = WorkerProcess(_worker_env(s), Path(s.data_dir) / "worker.log").start()
    where = [
        "── where to look ───────────────────────────────────────────────",
        f"ops page               http://127.0.0.1:{port}/ops",
        f"metrics                http://127.0.0.1:{port}/metrics",
        f"worker log             {worker.log}",
    ]
    say(f"demo: worker ready; ops page http://127.0.0.1:{port}/ops, metrics http://127.0.0.1:{port}/metrics")
    erp = ErpSystem(
        seed, ErpConfig(ignore_rate=0.02, drop_rate=0.01, overpay_rate=0.01, phantom_rate=0.01, early_invoice_rate=0.2)
    )
    stop_erp, stop_progress = threading.Event(), threading.Event()
    erp_result: dict[str, Any] = {}

    def erp_loop() -> None:
        erp_result["summary"] = run_erp(s, erp, drain=0, say=lambda line: None, progress_s=0, stop=stop_erp)

    threads = [
        threading.Thread(target=erp_loop, name="erp-sim", daemon=True),
        threading.Thread(target=_progress, args=(port, stop_progress, say), name="progress", daemon=True),
    ]
    for t in threads:
        t.start()
    try:
        say(f"demo: the simulated CRM sends {rate:.0f} messages/s for {seconds:.0f} s (seed {seed})")
        crm = run_crm(
            s,
            CrmSimulator(seed, CrmMix(milestone_billing=0.25, ended_terms=0.2), None, erp_links=True),
            rate,
            seconds,
            say=say,
        )
        say("demo: CRM done; waiting for the pipeline and the ERP to settle…")
        _settle(port, erp, say)
        stop_erp.set()
        threads[0].join(60)
        seen = observe(s, port)
    finally:
        stop_progress.set()
        stop_erp.set()
        if not keep:
            worker.stop()
            topics_admin.delete_prefixed(s, prefix)
    summary = summarise(crm.totals(), erp.summary.to_json(), seen)
    if not keep:
        where = [f"worker log             {worker.log}  (--keep leaves the worker, ops page and topics up)"]
    if keep:
        where.append(f"stop it with: kill {worker.pid}; then crm-erp-sync topics are under prefix {prefix!r}")
    say(render(summary, where).rstrip("\n"))
    return summary
