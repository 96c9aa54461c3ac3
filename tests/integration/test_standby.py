"""Standby replicas (issue 26, item 3): a worker taking over the partitions of a peer killed with
``kill -9`` recovers their tables from its standby copy instead of reading their changelogs again.

Two workers share the stream; with ``CRM_ERP_STANDBY_REPLICAS=1`` each keeps a copy of the other's
table partitions. The same scenario runs without and with standbys; the survivor's log says how many
changelog records its recovery had to read and how long it took.
"""

from __future__ import annotations

import signal
import time

import pytest

from app.sim import debezium as dbz
from app.sim import workload
from tests.integration.test_faults import FAST_FAILOVER, INPUTS, SESSION_TIMEOUT_S, now_ms
from tests.integration.test_opportunity_to_order import assert_one_create_per_deal
from tests.support.faults import cdc_feed, wait_all_committed
from tests.support.kafka import Sandbox, free_port, worker
from tests.support.recovery import Recovery, first_recovery

pytestmark = pytest.mark.integration

DEALS = 3000


def takeover(platform, tmp_path, standbys: int) -> tuple[Recovery, float]:
    """Two workers process ``DEALS`` deals, one is killed; the survivor's recovery, and the seconds from
    the kill until the survivor is ready again."""
    box = Sandbox(platform, tmp_path)
    box.create_all()
    feed = cdc_feed(box)
    lsn = dbz.Lsn(ts_ms=now_ms())
    feed.produce(workload.reference_data(lsn))
    feed.produce(workload.deals(lsn, DEALS, seed=standbys, prefix="opp-t"))
    env = {"CRM_ERP_STANDBY_REPLICAS": str(standbys), **FAST_FAILOVER}
    victim = worker(box, tmp_path / "victim.log", **env).start()
    survivor = worker(
        box,
        tmp_path / "survivor.log",
        CRM_ERP_DATA_DIR=str(tmp_path / "survivor"),
        CRM_ERP_WEB_PORT=str(free_port()),
        **env,
    ).start()
    try:
        assert_one_create_per_deal(box, [f"opp-t-{d}" for d in range(DEALS)], timeout=300)
        wait_all_committed(box, INPUTS, timeout=120)
        time.sleep(4)  # past a commit interval: the last checkpoint's changelog records reach the standby
        mark = len(survivor.log.read_text(errors="replace").splitlines())
        killed = time.monotonic()
        victim.kill(signal.SIGKILL)
        deadline = killed + SESSION_TIMEOUT_S + 120
        while (recovery := first_recovery(survivor.log.read_text(errors="replace").splitlines()[mark:])) is None:
            assert time.monotonic() < deadline, f"the survivor did not recover:\n{survivor.tail()}"
            time.sleep(0.2)
        ready_after = time.monotonic() - killed
        wait_all_committed(box, INPUTS, timeout=60)
        assert survivor.proc.poll() is None, survivor.tail()
        return recovery, ready_after
    finally:
        victim.kill()
        survivor.kill()


@pytest.mark.timeout(900)
def test_a_worker_taking_over_a_killed_peers_partitions_recovers_from_its_standby(platform, tmp_path):
    cold, cold_ready = takeover(platform, tmp_path / "without", standbys=0)
    warm, warm_ready = takeover(platform, tmp_path / "with", standbys=1)
    print(
        f"{DEALS} deals, two workers, one killed: without standbys the survivor read {cold.records} changelog "
        f"records in a recovery of {cold.seconds:.2f} s (ready {cold_ready:.1f} s after the kill); with one "
        f"standby {warm.records} records, {warm.seconds:.2f} s (ready {warm_ready:.1f} s after the kill)"
    )
    assert cold.records > DEALS  # the peer's half of every table, read again from the changelogs
    assert warm.records * 20 < cold.records  # the standby had it: at most a checkpoint's tail is left
