"""On a running worker: the key metrics move with the traffic, and the logs find a deal by its id."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.catalog import default_catalog
from tests.support.crm import Crm
from tests.support.kafka import Sandbox

pytestmark = pytest.mark.integration

COMMANDS = "erp.commands.sales-order"


def scrape(sandbox: Sandbox) -> dict[tuple[str, frozenset], float]:
    text = httpx.get(f"http://127.0.0.1:{sandbox.settings.web_port}/metrics", timeout=10).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples, name: str, **labels: str) -> float:
    """Sum of ``name``'s samples whose labels include ``labels`` (0 when there are none)."""
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls)


def test_key_metrics_move_and_logs_carry_the_deal(sandbox: Sandbox, worker_factory):
    sandbox.create_all()
    crm = Crm(sandbox)
    crm.reference_data()
    crm.deal("opp-m1")
    events = crm.deal("opp-m2")
    crm.resend("opportunity", "opp-m2", events["close"])  # a CDC duplicate
    sandbox.produce_raw("crm.public.opportunity", b"opp-m3", b"\x07not avro")  # a poison message
    sandbox.flush()
    worker = worker_factory()
    sandbox.collect(COMMANDS, lambda ms: len({m.key() for m in ms}) == 2, 90, "both creates")

    deadline = time.monotonic() + 45  # the lag gauges refresh every 15 s
    while True:
        m = scrape(sandbox)
        lag_seen = any(n == "crm_erp_sync_consumer_lag" for n, _ in m)
        caught_up = value(m, "crm_erp_sync_consumer_lag", topic=sandbox.topic("crm.public.opportunity")) == 0
        if (lag_seen and caught_up and value(m, "crm_erp_sync_quarantined_total") >= 1) or time.monotonic() > deadline:
            break
        time.sleep(1)

    assert value(m, "crm_erp_sync_events_consumed_total", topic="opportunity") >= 7  # 3 + 3 + duplicate
    assert value(m, "crm_erp_sync_commands_emitted_total", type="CreateSalesOrder") == 2
    assert value(m, "crm_erp_sync_source_to_command_seconds_count", flow="opportunity_to_order") == 2
    assert value(m, "crm_erp_sync_dedup_hits_total", flow="opportunity_to_order") >= 1
    assert value(m, "crm_erp_sync_flow_events_total", flow="opportunity_to_order", outcome="duplicate") >= 1
    assert value(m, "crm_erp_sync_quarantined_total", reason="BAD_MAGIC_BYTE") == 1
    for stage in ("decode", "decide", "encode", "state", "send"):
        assert value(m, "crm_erp_sync_stage_seconds_count", stage=stage) > 0, stage
    assert value(m, "crm_erp_sync_registry_lookups_total", kind="writer", result="hit") > 0
    assert value(m, "crm_erp_sync_registry_lookups_total", kind="writer", result="miss") >= 1
    assert value(m, "crm_erp_sync_registry_lookups_total", kind="id", result="miss") >= 1
    lag = {dict(ls)["partition"]: v for (n, ls), v in m.items() if n == "crm_erp_sync_consumer_lag"}
    assert lag and all(v >= 0 for v in lag.values())
    assert value(m, "crm_erp_sync_consumer_lag", topic=sandbox.topic("crm.public.opportunity")) == 0  # caught up
    assert value(m, "crm_erp_sync_retry_tier_depth", tier="10s") == 0
    assert value(m, "faust_messages_received_total") > 0  # Faust's sensors on the same registry

    lines = [json.loads(x) for x in worker.log.read_text().splitlines() if x.startswith("{")]
    mine = [x for x in lines if x.get("correlation_id") == "opp-m2"]
    sent = [x for x in mine if x.get("command_id", "").startswith("opp-m2:create:")]
    assert sent and sent[0]["source"].startswith(sandbox.topic("sync.deal-changes"))
    [poison] = [x for x in lines if x.get("reason_code") == "BAD_MAGIC_BYTE"]
    assert poison["exception_id"].startswith("dlq:") and poison["level"] == "ERROR"
    assert "ACME GmbH" not in worker.log.read_text()


def test_a_missing_catalog_topic_is_named_by_ready_and_the_log_until_it_is_created(sandbox: Sandbox, worker_factory):
    """Without it, the first send to the topic would wait 30 s for metadata and fail (README, known problems)."""
    sandbox.create(*(s.name for s in default_catalog() if s.name != "sync.escalations"))
    worker = worker_factory()
    url = f"http://127.0.0.1:{sandbox.settings.web_port}/ready"
    answer = httpx.get(url, timeout=10)
    assert answer.status_code == 503
    assert answer.json()["missing_topics"] == [sandbox.topic("sync.escalations")]
    assert "catalog topics missing on the broker" in worker.log.read_text() and "topics apply" in worker.log.read_text()
    sandbox.create("sync.escalations")
    deadline = time.monotonic() + 40
    while httpx.get(url, timeout=10).json()["missing_topics"] and time.monotonic() < deadline:
        time.sleep(1)
    assert httpx.get(url, timeout=10).json()["missing_topics"] == []
    assert "every catalog topic exists on the broker now" in worker.log.read_text()


def test_with_a_token_ops_and_metrics_need_it_probes_stay_open_and_the_router_is_off(sandbox: Sandbox, worker_factory):
    sandbox.create_all()
    worker_factory(CRM_ERP_WEB_TOKEN="s3cret-token")
    web = f"http://127.0.0.1:{sandbox.settings.web_port}"
    bearer = {"Authorization": "Bearer s3cret-token"}
    for page in ("/metrics", "/ops"):
        assert httpx.get(f"{web}{page}", timeout=10).status_code == 401
        assert httpx.get(f"{web}{page}", headers={"Authorization": "Bearer wrong"}, timeout=10).status_code == 401
        assert httpx.get(f"{web}{page}", headers=bearer, timeout=10).status_code == 200
    assert "crm_erp_sync_events_consumed_total" in httpx.get(f"{web}/metrics", headers=bearer, timeout=10).text
    assert httpx.get(f"{web}/health", timeout=10).status_code == 200
    assert httpx.get(f"{web}/ready", timeout=10).status_code in (200, 503)  # a state, not a secret
    for faust_page in ("/router/", "/graph/", "/table/"):
        assert httpx.get(f"{web}{faust_page}", headers=bearer, timeout=10).status_code == 404, faust_page
