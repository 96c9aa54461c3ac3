"""The worker's ``/ops`` page in headless Chromium: open exceptions and drift alerts in words, no personal data."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from decimal import Decimal

import httpx
import pytest

from app.ops.screenshot import find_chromium
from app.settings import REPO_ROOT
from app.sim import debezium as dbz
from app.sim import erp
from tests.integration.test_erp_feedback import EUR, create_of, send
from tests.support.crm import Crm
from tests.support.kafka import Sandbox

pytestmark = pytest.mark.integration

EMAIL = "erika.mustermann@acme.example"
PERSONAL = ("ACME GmbH", "Erika", "Mustermann", EMAIL)  # the account's name, a contact's name and e-mail
SCREENSHOT = REPO_ROOT / "out" / "ops.png"


@pytest.fixture
def crm(sandbox: Sandbox) -> Crm:
    sandbox.create_all()
    world = Crm(sandbox)
    world.reference_data()  # account acc-1 is "ACME GmbH"
    world.upsert("contact", dbz.contact_row("con-1", "acc-1", last_name="Mustermann", first_name="Erika", email=EMAIL))
    return world


def page_until(url: str, *needles: str, timeout: float = 60.0) -> str:
    """The page's HTML once every needle is on it (the ledger fills a moment after the records)."""
    deadline = time.monotonic() + timeout
    while True:
        text = httpx.get(url, timeout=10).text
        if all(n in text for n in needles) or time.monotonic() > deadline:
            return text
        time.sleep(0.5)


def test_the_ops_page_shows_open_exceptions_and_alerts_in_plain_words_without_personal_data(
    sandbox: Sandbox, crm: Crm, worker_factory
):
    crm.deal("opp-w1")  # the ERP will accept another amount: a drift alert
    crm.deal("opp-w2")  # the ERP will reject it, quoting the contact's e-mail: an open exception
    sandbox.flush()
    worker_factory()
    ids = {opp: create_of(sandbox, opp) for opp in ("opp-w1", "opp-w2")}
    send(sandbox, erp.accepted("opp-w1", Decimal("240.00"), EUR, "SO-w1", ids["opp-w1"]))
    send(sandbox, erp.rejected("opp-w2", "CREDIT_LIMIT", f"over the credit limit, ask {EMAIL}"))
    sandbox.produce_raw("crm.public.opportunity", b"opp-w3", b"\x09not avro")  # poison: quarantined

    url = f"http://127.0.0.1:{sandbox.settings.web_port}/ops"
    html = page_until(url, "opp-w2:ERP_REJECTED", "opp-w1:amount:accepted", "BAD_MAGIC_BYTE")
    assert "opp-w2:ERP_REJECTED" in html and "opp-w1:amount:accepted" in html, html

    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=find_chromium(), headless=True)
        try:
            page = browser.new_page()
            assert page.goto(url).ok
            pipeline = page.inner_text("#pipeline")
            exceptions = page.inner_text("#exceptions")
            alerts = page.inner_text("#alerts")
            summary = page.inner_text("#summary")
            content = page.content()
            scripts = page.locator("script").count()
        finally:
            browser.close()

    assert "Running normally" in pipeline and "This worker's partitions: 4 of 4" in pipeline
    assert re.search(r"Schema registry reachable\s+yes", pipeline) and re.search(r"Tables recovered\s+yes", pipeline)
    assert re.search(r"Rebalancing\s+no", pipeline)
    processed = re.search(r"Events processed \(since this worker started\)\s+([\d,]+)", pipeline)
    assert processed and int(processed[1].replace(",", "")) > 0
    assert re.search(r"Commands emitted \(since this worker started\)\s+[1-9]", pipeline)

    assert "The ERP refused the sales order." in exceptions and "opp-w2" in exceptions
    assert "250.00 EUR" in exceptions and "order-management" in exceptions
    assert re.search(r"just now|\d+ s ago", exceptions)
    assert "e***@acme.example" in exceptions  # the ERP's text, masked
    assert "A message was not in the agreed format" in exceptions and "Set aside (quarantined)" in exceptions

    assert "The ERP's amount or currency differs" in alerts and "AMOUNT_MISMATCH" in alerts
    assert "10.00 EUR" in alerts and "opp-w1" in alerts and "order SO-w1" in alerts and "deal-desk" in alerts
    assert "10.00 EUR" in summary and "250.00 EUR" in summary

    assert not [p for p in PERSONAL if p in content], "personal data on the page"
    assert scripts == 0

    # what a person runs to look at it: the screenshot command, against the same worker
    SCREENSHOT.unlink(missing_ok=True)
    run = subprocess.run(
        [sys.executable, "-m", "app.cli", "ops-screenshot", "--out", str(SCREENSHOT)],
        env=sandbox.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    data = SCREENSHOT.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
