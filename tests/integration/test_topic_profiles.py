"""Environment profiles on the real broker (issue 26, item 1): drift against a profile reported,
partition increases on keyed topics refused with the reason, a worker refusing under-replicated topics."""

from __future__ import annotations

import subprocess
import sys

import pytest

from app.client_config import admin_client
from tests.support.kafka import Sandbox

pytestmark = pytest.mark.integration


def cli(sandbox: Sandbox, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], env=sandbox.env(**env), capture_output=True, text=True, timeout=180
    )


def test_a_single_broker_cluster_is_what_local_asks_for_and_not_what_production_asks_for(sandbox: Sandbox):
    sandbox.create_all()
    local = cli(sandbox, "topics", "check", "--profile", "local")
    assert local.returncode == 0 and "catalog and cluster agree" in local.stdout, local.stdout + local.stderr

    audit = sandbox.topic("sync.audit")
    production = cli(sandbox, "topics", "check", "--profile", "production")
    assert production.returncode == 1
    assert f"{audit}: replication is 1 on the cluster, 3 in the catalog" in production.stdout
    assert f"{audit}: partitions is 4 on the cluster, 12 in the catalog" in production.stdout
    assert f"{audit}: min.insync.replicas is 1 on the cluster, 2 in the catalog" in production.stdout
    assert sandbox.topic("sync.reference-data") + ": partitions" not in production.stdout  # one partition by design

    applied = cli(sandbox, "topics", "apply", "--profile", "production")
    assert applied.returncode == 1
    assert f"! {audit}: 4 partitions on the cluster, 12 in the profile: left as is." in applied.stdout
    assert "more partitions would move keys" in applied.stdout and "kafka-reassign-partitions" in applied.stdout
    meta = admin_client(sandbox.settings).list_topics(timeout=30).topics
    assert len(meta[audit].partitions) == 4  # nothing moved


def test_a_worker_refuses_topics_replicated_below_its_profile(sandbox: Sandbox):
    sandbox.create_all()
    run = cli(sandbox, "worker", CRM_ERP_TOPIC_PROFILE="production")
    assert run.returncode == 2, run.stdout[-2000:] + run.stderr[-2000:]
    assert "topics replicated below the 'production' profile (3)" in run.stderr
    assert "CRM_ERP_ALLOW_UNDER_REPLICATED=true" in run.stderr
