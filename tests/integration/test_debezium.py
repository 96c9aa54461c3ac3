"""A real CDC producer: PostgreSQL → Debezium 3.6.1 in Kafka Connect → Apicurio's Avro converter → the worker.

Nothing here imitates Debezium: the rows are SQL statements against a CRM database whose columns
are what a CRM team would choose (NOT NULL, ``timestamptz`` beside ``timestamp``, numeric money),
the connector registers its own writer schemas under its own subjects, and the service only reads
them. The write-back applies ``crm.commands.update`` to the same database with ``crm-writer``.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import httpx
import pytest
from pydantic import SecretStr

from app.catalog import default_catalog
from app.domain.orders.renewals import add_months
from app.ops import crm_writer
from app.platform import cdc
from app.serde.source_schemas import SourceChecker
from app.sim import erp
from tests.support.cdc import SALES_USER, CrmDatabase
from tests.support.kafka import Sandbox

pytestmark = pytest.mark.integration

COMMANDS = "erp.commands.sales-order"
EVENTS = "erp.events.sales-order"
LOOP_SUPPRESSED = 'flow="opportunity_to_order",outcome="loop_suppressed"'


def commands(sandbox: Sandbox) -> dict[str, list[tuple[str, dict]]]:
    """(command kind, command value) per deal, in the order they were sent."""
    out: dict[str, list[tuple[str, dict]]] = {}
    for m in sandbox.everything(COMMANDS, quiet=4):
        value = sandbox.decode_named(m)
        name, _ = value["command"]
        out.setdefault(m.key().decode(), []).append((name.rsplit(".", 1)[1], value))
    return out


def metric(sandbox: Sandbox, name: str, labels: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{sandbox.settings.web_port}/metrics", timeout=10).text
    found = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


@contextmanager
def crm_writer_running(sandbox: Sandbox, crm_db: CrmDatabase) -> Iterator[None]:
    """``crm-writer`` applying the sandbox's CRM commands to the test's database, as its own role."""
    stop = threading.Event()
    url = SecretStr(cdc.database_url(sandbox.settings, "crm_writer", crm_db.name))
    settings = sandbox.settings.model_copy(update={"crm_database_url": url})
    writer = threading.Thread(target=crm_writer.run, args=(settings, stop, lambda _: None), daemon=True)
    writer.start()
    try:
        yield
    finally:
        stop.set()
        writer.join(30)


def wait_for(what: str, done, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = done()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout}s: {what}")


def test_a_real_debezium_stream_becomes_orders_and_nothing_is_quarantined(
    sandbox: Sandbox, crm_db: CrmDatabase, worker_factory
):
    sandbox.create_all()
    # before the connector exists: rows its snapshot will read
    crm_db.reference_data()
    crm_db.deal("006-snap")
    crm_db.deal("006-snaplost", stage="Closed Lost")
    # the service starts first, as the README orders it: the CDC subjects do not exist yet
    worker = worker_factory()
    crm_db.capture()

    # streaming: the stage progressions and the edits a sales team makes
    crm_db.deal("006-won")
    crm_db.deal("006-lost", stage="Closed Lost")
    crm_db.deal("006-edit")
    crm_db.deal("006-reopen")
    crm_db.deal("006-hard")
    crm_db.deal("006-soft")
    # a line deleted before the close: the order has the other two. The lines travel in different
    # partitions, so the deal may see them in any order: only l1 + l2 may add up to the amount (with
    # l3 equal to l2, l1 + l3 did too, and a create from them was amended when l2 and the delete came)
    crm_db.opportunity("006-drop", amount="250.00")
    for n, (product, price, quantity) in enumerate(
        (("01t-a", "100.00", 2), ("01t-b", "50.00", 1), ("01t-b", "50.00", 2)), 1
    ):
        crm_db.line(f"006-drop-l{n}", "006-drop", product, quantity, price)
    crm_db.sql("DELETE FROM opportunity_line_item WHERE id = '006-drop-l3'")
    crm_db.stage("006-drop", "Closed Won")
    # a description too large to stay inline: TOASTed, so an update that leaves it alone sends the placeholder
    crm_db.opportunity("006-toast", description=secrets.token_hex(8000))
    crm_db.line("006-toast-l1", "006-toast", "01t-a", 2, "100.00")
    crm_db.line("006-toast-l2", "006-toast", "01t-b", 1, "50.00")
    crm_db.stage("006-toast", "Closed Won")
    wait_for("the first creates", lambda: len(commands(sandbox)) >= 6, 120)

    # after the close: an edit (amend), a reopen (cancel), a hard and a soft delete (cancels)
    crm_db.sql("UPDATE opportunity_line_item SET quantity = 3, total_price = 300.00 WHERE id = '006-edit-l1'")
    crm_db.update("opportunity", "006-edit", amount=Decimal("350.00"), last_modified_date="now")
    crm_db.stage("006-reopen", "Negotiation")
    crm_db.sql("DELETE FROM opportunity WHERE id = '006-hard'")  # its lines go with it (ON DELETE CASCADE)
    crm_db.update("opportunity", "006-soft", is_deleted=True, last_modified_date="now")
    # a column added while running: Debezium registers a new writer version the service has never seen
    crm_db.sql("ALTER TABLE opportunity ADD COLUMN region text NOT NULL DEFAULT 'EMEA'")
    crm_db.deal("006-region")

    expected = {
        "006-snap": ["CreateSalesOrder"],
        "006-won": ["CreateSalesOrder"],
        "006-edit": ["CreateSalesOrder", "AmendSalesOrder"],
        "006-reopen": ["CreateSalesOrder", "CancelSalesOrder"],
        "006-hard": ["CreateSalesOrder", "CancelSalesOrder"],
        "006-soft": ["CreateSalesOrder", "CancelSalesOrder"],
        "006-drop": ["CreateSalesOrder"],
        "006-toast": ["CreateSalesOrder"],
        "006-region": ["CreateSalesOrder"],
    }

    def settled():
        got = commands(sandbox)
        return got if {k: [kind for kind, _ in v] for k, v in got.items()} == expected else None

    got = wait_for("one create per won deal, an amend, three cancels", settled, 150)
    drop = next(v for kind, v in got["006-drop"] if kind == "CreateSalesOrder")
    assert [ln["line_id"] for ln in drop["command"][1]["lines"]] == ["006-drop-l1", "006-drop-l2"]
    amend = got["006-edit"][1][1]["command"][1]
    assert amend["amount"] == Decimal("350.00")
    assert sandbox.everything("sync.dead-letter", quiet=2) == []
    assert sandbox.everything("sync.exceptions", quiet=1) == []

    # the service never registered or re-levelled a CDC subject, and reads every version Debezium wrote
    subject = f"{sandbox.topic('crm.public.opportunity')}-value"
    assert len(sandbox.registry.get_versions(subject)) == 2  # before and after ADD COLUMN
    verdicts = SourceChecker(sandbox.settings).check(default_catalog())
    assert all(not v.unreadable for v in verdicts), [str(v) for v in verdicts]
    ready = httpx.get(f"http://127.0.0.1:{sandbox.settings.web_port}/ready", timeout=10).json()
    assert ready["unreadable_source_schemas"] == []
    assert worker.proc.poll() is None


def test_the_write_back_lands_in_the_crm_returns_through_cdc_and_changes_nothing(
    sandbox: Sandbox, crm_db: CrmDatabase, worker_factory
):
    sandbox.create_all()
    crm_db.reference_data()
    crm_db.capture()
    worker_factory()
    crm_db.deal("006-wb")
    [(_, create)] = wait_for("the create", lambda: commands(sandbox).get("006-wb"), 120)
    command_id = create["envelope"]["command_id"]
    sandbox.produce_avro(
        EVENTS,
        "io.crmerpsync.erp.events.ErpOrderEvent",
        [(b"006-wb", erp.accepted("006-wb", Decimal("250.00"), "EUR", "SO-77", command_id))],
    )
    with crm_writer_running(sandbox, crm_db):
        row = wait_for(
            "the ERP status in the CRM row",
            lambda: (r := crm_db.row("opportunity", "006-wb")) and r["erp_order_number"] == "SO-77" and r,
        )
    assert (row["order_status"], row["last_modified_by_id"]) == ("ACCEPTED", sandbox.settings.integration_crm_user)
    assert row["stage_name"] == "Closed Won" and row["amount"] == Decimal("250.00")  # CRM-owned: untouched

    # the write-back comes back through Debezium and is recognised as the service's own
    wait_for(
        "the write-back's CDC event, loop-suppressed",
        lambda: (
            metric(sandbox, "crm_erp_sync_flow_events_total", 'flow="opportunity_to_order",outcome="loop_suppressed"')
            >= 1
        ),
    )
    assert [k for k, _ in commands(sandbox)["006-wb"]] == ["CreateSalesOrder"]  # no amend, no second create
    assert sandbox.everything("sync.drift-alerts", quiet=2) == []
    assert sandbox.everything("sync.dead-letter", quiet=1) == []


def test_a_contract_whose_term_ended_gets_its_renewal_through_the_crm_writer_and_the_alert_resolves(
    sandbox: Sandbox, crm_db: CrmDatabase, worker_factory
):
    sandbox.create_all()
    crm_db.reference_data()
    crm_db.capture()
    worker_factory()
    close = dt.date.today() - dt.timedelta(days=40)
    crm_db.deal("006-rn", close_date=close, contract_term_months=1)  # the term ended ~10 days ago

    def alerts() -> list[tuple[str, str]]:
        values = [sandbox.decode(m) for m in sandbox.everything("sync.drift-alerts", quiet=1)]
        return [(a["alert_id"], a["state"]) for a in values if a["kind"] == "RENEWAL_MISSING"]

    wait_for("RENEWAL_MISSING opened", lambda: ("006-rn:renewal:missing:1", "OPEN") in alerts(), 120)
    [request] = [sandbox.decode(m) for m in sandbox.everything("crm.commands.renewal", quiet=1)]
    renewal_id = f"006-rn-renewal-{add_months(close, 1):%Y%m%d}"
    assert (request["renewal_opportunity_id"], request["term_end"]) == (renewal_id, add_months(close, 1))

    with crm_writer_running(sandbox, crm_db):
        row = wait_for("the renewal opportunity in the CRM", lambda: crm_db.row("opportunity", renewal_id))
        # the new row returns through Debezium: the renewed deal hears of it and its alert resolves
        wait_for("RENEWAL_MISSING resolved", lambda: ("006-rn:renewal:missing:1", "RESOLVED") in alerts(), 120)
    assert (row["renewal_of"], row["stage_name"], row["close_date"]) == ("006-rn", "Prospecting", add_months(close, 1))
    assert row["last_modified_by_id"] == sandbox.settings.integration_crm_user
    assert [k for k, _ in commands(sandbox)["006-rn"]] == ["CreateSalesOrder"]
    assert renewal_id not in commands(sandbox)  # a prospect: no order


def test_a_sales_user_overwriting_the_erp_order_status_is_alerted_and_restored_through_the_crm_writer(
    sandbox: Sandbox, crm_db: CrmDatabase, worker_factory
):
    sandbox.create_all()
    crm_db.reference_data()
    crm_db.capture()
    worker_factory()
    crm_db.deal("006-ow")
    [(_, create)] = wait_for("the create", lambda: commands(sandbox).get("006-ow"), 120)
    sandbox.produce_avro(
        EVENTS,
        "io.crmerpsync.erp.events.ErpOrderEvent",
        [(b"006-ow", erp.accepted("006-ow", Decimal("250.00"), "EUR", "SO-78", create["envelope"]["command_id"]))],
    )

    def conflicts() -> list[tuple[str, str, str | None, str | None]]:
        values = [sandbox.decode(m) for m in sandbox.everything("sync.drift-alerts", quiet=1)]
        return [(a["alert_id"], a["state"], a["expected"], a["observed"]) for a in values
                if a["kind"] == "OWNERSHIP_CONFLICT"]  # fmt: skip

    alert = "006-ow:owner:order_status:1"
    with crm_writer_running(sandbox, crm_db):
        wait_for("the ERP status in the CRM", lambda: (crm_db.row("opportunity", "006-ow") or {}).get("order_status"))
        crm_db.update("opportunity", "006-ow", order_status="CANCELLED", last_modified_by_id=SALES_USER,
                      last_modified_date="now")  # fmt: skip
        wait_for("the conflict", lambda: (alert, "OPEN", "ACCEPTED", "CANCELLED") in conflicts(), 120)
        row = wait_for(
            "the ERP's value restored in the CRM",
            lambda: (r := crm_db.row("opportunity", "006-ow")) and r["order_status"] == "ACCEPTED" and r,
        )
        wait_for("the conflict resolved", lambda: (alert, "RESOLVED", None, None) in conflicts(), 120)
    assert row["last_modified_by_id"] == sandbox.settings.integration_crm_user
    assert [k for k, _ in commands(sandbox)["006-ow"]] == ["CreateSalesOrder"]  # no amend, no cancel
