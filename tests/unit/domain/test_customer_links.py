"""The customer link loop: ERP customer events become the account's link and a CRM write-back."""

from __future__ import annotations

import io
from decimal import Decimal

import fastavro

from app.contracts import default_index
from app.contracts.models import model
from app.domain.allowlists import outside
from app.domain.changes import Lineage
from app.domain.customer_links import CustomerEvent, CustomerEventKind, CustomerStatus, apply, write_back
from app.domain.outputs import AuditRecord, CrmAccountUpdate
from app.engine.routes import record, route
from tests.support.deals import NOW

ACCOUNT_UPDATE = "io.crmerpsync.sync.CrmAccountUpdateCommand"
LINEAGE = Lineage("erp.events.customer", 1, 7, 3, 1_700_000_000_000)


def event(kind=CustomerEventKind.CREATED, event_id="e-1", at=1_700_000_000_000, **overrides) -> CustomerEvent:
    values = {
        "event_id": event_id,
        "account_id": "acc-u1",
        "command_id": "acc-u1:upsert:lsn:5",
        "kind": kind,
        "customer_number": "C-900001",
        "credit_limit": Decimal("50000.00"),
        "currency": "EUR",
        "credit_hold": False,
        "payment_terms": "NET30",
        "occurred_at_ms": at,
    }
    return CustomerEvent(**{**values, **overrides})


def test_a_created_customer_becomes_the_accounts_link_and_is_written_back_to_the_crm():
    link = apply(None, event())
    assert link is not None and link.linked and link.status is CustomerStatus.ACTIVE
    assert (link.customer_number, link.credit_limit, link.version) == ("C-900001", Decimal("50000.00"), 1)
    update, audit = write_back(None, link, LINEAGE, NOW)
    assert isinstance(update, CrmAccountUpdate) and isinstance(audit, AuditRecord)
    assert route(update).topic == "crm.commands.account-update" and update.key == "acc-u1"
    v = update.value
    assert (v["account_id"], v["erp_customer_number"], v["erp_customer_status"]) == ("acc-u1", "C-900001", "ACTIVE")
    assert (v["credit_limit"], v["currency"], v["credit_hold"]) == ("50000.00", "EUR", False)
    assert v["envelope"]["command_id"] == "acc-u1:link:e-1" and v["envelope"]["correlation_id"] == "acc-u1"
    assert record(audit)["topic"] == "crm.commands.account-update"
    assert outside(CrmAccountUpdate, v) == []


def test_the_write_back_is_a_valid_contract_record():
    link = apply(None, event())
    [update, _] = write_back(None, link, LINEAGE, NOW)
    parsed = model(ACCOUNT_UPDATE).model_validate(update.value)
    fastavro.schemaless_writer(io.BytesIO(), fastavro.parse_schema(default_index().expanded(ACCOUNT_UPDATE)),
                               parsed.to_avro())  # fmt: skip


def test_a_duplicate_or_an_older_event_changes_nothing():
    link = apply(None, event(at=2_000))
    assert apply(link, event(at=2_000)) is None  # the same event id, delivered twice
    assert apply(link, event(CustomerEventKind.UPDATED, "e-0", at=1_000)) is None  # a straggler
    assert apply(link, event(CustomerEventKind.UNKNOWN, "e-9", at=3_000)) is None  # a kind this version lacks


def test_an_update_the_crm_does_not_show_is_kept_but_not_written_back():
    link = apply(None, event())
    later = apply(link, event(CustomerEventKind.UPDATED, "e-2", at=1_700_000_001_000, payment_terms="NET60"))
    assert later is not None and later.version == 2 and later.payment_terms == "NET60"
    assert write_back(link, later, LINEAGE, NOW) == []
    held = apply(later, event(CustomerEventKind.UPDATED, "e-3", at=1_700_000_002_000, credit_hold=True))
    [update, _] = write_back(later, held, LINEAGE, NOW)
    assert update.value["credit_hold"] is True and update.value["envelope"]["command_id"] == "acc-u1:link:e-3"


def test_a_deactivated_or_merged_customer_is_no_longer_linked():
    link = apply(None, event())
    gone = apply(link, event(CustomerEventKind.DEACTIVATED, "e-2", at=1_700_000_001_000))
    assert gone.status is CustomerStatus.DEACTIVATED and not gone.linked
    [update, _] = write_back(link, gone, LINEAGE, NOW)
    assert update.value["erp_customer_status"] == "DEACTIVATED"
    merged = apply(link, event(CustomerEventKind.MERGED, "e-4", at=1_700_000_003_000,
                               merged_into_customer_number="C-10001"))  # fmt: skip
    assert merged.status is CustomerStatus.MERGED and merged.merged_into_customer_number == "C-10001"
