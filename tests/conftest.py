"""Session fixtures: the real platform (brought up if needed, taken down if we started it)."""

from __future__ import annotations

import os

import pytest

from app.ops.worker_process import WorkerProcess
from app.settings import Settings
from tests.support.crm import Crm
from tests.support.kafka import Sandbox, worker


@pytest.fixture(scope="session")
def platform() -> Settings:
    """The Kafka broker and registry the integration tests use.

    ``CRM_ERP_KAFKA_BOOTSTRAP`` / ``CRM_ERP_REGISTRY_URL`` point at an external platform; otherwise
    the embedded local platform is started (and stopped again at the end if this session started it).
    A platform that cannot be reached is a failure, never a skip.
    """
    from app.platform import local

    settings = Settings()
    external = "CRM_ERP_KAFKA_BOOTSTRAP" in os.environ
    started = False
    if not external and not (
        local.kafka_answers(settings.kafka_bootstrap) and local.registry_answers(settings.registry_url)
    ):
        local.up(settings)
        started = True
    assert local.kafka_answers(settings.kafka_bootstrap), f"no Kafka broker at {settings.kafka_bootstrap}"
    assert local.registry_answers(settings.registry_url), f"no schema registry at {settings.registry_url}"
    yield settings
    if started and os.environ.get("CRM_ERP_KEEP_PLATFORM") != "1":
        local.down(settings)


@pytest.fixture(scope="session")
def cdc_platform(platform: Settings) -> Settings:
    """PostgreSQL and Kafka Connect with Debezium beside the platform (started here if they are not
    running, and stopped again at the end if this session started them)."""
    from app.platform import cdc

    lay = cdc.CdcLayout(platform)
    started = lay.postgres.pid() is None or lay.connect.pid() is None
    cdc.start(platform)
    yield platform
    if started and os.environ.get("CRM_ERP_KEEP_PLATFORM") != "1":
        cdc.down(platform)


@pytest.fixture
def crm_db(cdc_platform: Settings, sandbox):
    """The sandbox's own CRM database; its Debezium connector starts when the test calls ``capture``."""
    from tests.support.cdc import CrmDatabase

    db = CrmDatabase(sandbox)
    yield db
    db.drop()


@pytest.fixture
def sandbox(platform: Settings, tmp_path):
    box = Sandbox(platform, tmp_path)
    yield box
    box.drop()


@pytest.fixture
def worker_factory(sandbox: Sandbox, tmp_path):
    """Start workers for the sandbox; every worker still running at the end is stopped."""
    started: list[WorkerProcess] = []

    def start(**env: str) -> WorkerProcess:
        w = worker(sandbox, tmp_path / f"worker{len(started)}.log", **env).start()
        started.append(w)
        return w

    yield start
    for w in started:
        w.kill()


@pytest.fixture
def crm(sandbox: Sandbox) -> Crm:
    """The sandbox's catalog topics, and a simulated CRM whose reference data is already sent (account
    acc-1 linked to C-1001, products prod-a and prod-b with EUR prices). A test module may override it."""
    sandbox.create_all()
    world = Crm(sandbox)
    world.reference_data()
    return world
