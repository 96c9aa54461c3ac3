"""Account changes become UpsertCustomer commands that carry only what the ERP needs."""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import replace
from decimal import Decimal
from typing import Any

import fastavro

from app.cdc.envelope import normalise
from app.contracts import default_index
from app.contracts.models import model
from app.domain.changes import Lineage, Op, RowChange
from app.domain.customers import ALLOWED_FIELDS, erp_view, upsert_customer
from app.domain.orders.references import Account
from app.domain.orders.validation import Policy
from app.domain.outputs import CUSTOMER_COMMAND, CustomerCommand
from app.flows import accounts as account_flow
from app.sim import debezium as sim
from tests.support.deals import NOW, FakeReferences
from tests.support.driver import apply_step

INTEGRATION_USER = Policy().integration_user
PRIVATE = {"phone": "+49 30 1234567", "website": "https://acme.example", "industry": "Manufacturing"}
REVENUE = Decimal("98765432.10")
ADDRESS_COLUMNS = {f"{side}_{part}": value for side in ("billing", "shipping") for part, value in sim.ADDRESS.items()}


def decoded_envelope(event: dict[str, Any]) -> dict[str, Any]:
    schema = fastavro.parse_schema(default_index().expanded("crm.public.account.Envelope"))
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, event)
    buf.seek(0)
    return fastavro.schemaless_reader(buf, schema)


def account_row(**overrides) -> dict[str, Any]:
    values = {**ADDRESS_COLUMNS, **PRIVATE, "annual_revenue": REVENUE, "erp_customer_number": "C-1001", **overrides}
    return sim.account_row("001-1", "ACME GmbH", **values)


def account_change(row: dict[str, Any] | None = None, lsns: sim.Lsn | None = None) -> tuple[RowChange, Account]:
    """The change and the account a consumer builds from a mapped, decoded account row."""
    event = decoded_envelope(sim.create("account", row or account_row(), lsns or sim.Lsn()))
    change = normalise("account", event, "001-1", default_index().expanded("crm.public.account.Envelope"))
    return change, Account.model_validate(change.fields)


def lineage(change: RowChange) -> Lineage:
    return Lineage("crm.public.account", 0, 42, 7, change.position.ts_ms)


def command(change: RowChange, account: Account, previous: Account | None = None) -> dict[str, Any] | None:
    sent = erp_view(change.row_id, previous) if previous else None
    return upsert_customer(change, account, sent, lineage(change), INTEGRATION_USER, NOW)


def test_an_account_change_becomes_an_upsert_customer_with_exactly_the_allowed_fields():
    change, account = account_change()
    value = command(change, account)
    body = value["command"]
    assert set(body) == ALLOWED_FIELDS
    assert body["account_id"] == "001-1" and body["name"] == "ACME GmbH" and body["customer_number"] == "C-1001"
    assert body["payment_terms"] == "NET30" and body["tax_code"] == "STD" and body["tax_exempt"] is False
    assert body["bill_to"] == {**sim.ADDRESS, "state": None} and body["ship_to"] == body["bill_to"]
    assert value["envelope"]["correlation_id"] == "001-1"


def test_phone_website_industry_and_revenue_never_leave_the_crm():
    change, account = account_change()
    text = repr(command(change, account))
    for secret in [*PRIVATE.values(), str(REVENUE), "98765432"]:
        assert secret not in text
    for column in ("phone", "website", "industry", "annual_revenue"):
        assert column not in text


def test_an_incomplete_account_address_is_sent_as_no_address():
    change, account = account_change(account_row(billing_city=None))
    body = command(change, account)["command"]
    assert body["bill_to"] is None and body["ship_to"] is not None


def test_a_change_written_by_the_integration_user_is_not_echoed_to_the_erp():
    change, account = account_change(account_row(last_modified_by_id=INTEGRATION_USER))
    assert command(change, account) is None


def test_a_change_the_erp_view_does_not_see_yields_no_command():
    _, previous = account_change()
    change, account = account_change(account_row(phone="+49 40 7654321", industry="Retail"))
    assert account == previous  # the mapping does not even carry these columns
    assert command(change, account, previous) is None


def test_an_unchanged_account_yields_no_command():
    change, account = account_change()
    assert command(change, account, account.model_copy()) is None


def test_a_change_to_an_allowed_field_yields_a_command():
    _, previous = account_change()
    change, account = account_change(account_row(payment_terms="NET60"))
    assert command(change, account, previous)["command"]["payment_terms"] == "NET60"


def test_the_command_id_is_deterministic_from_the_account_id_and_position():
    lsns = sim.Lsn()
    change, account = account_change(lsns=lsns)
    first = command(change, account)["envelope"]
    again = upsert_customer(change, account, None, Lineage("elsewhere", 3, 99, None, None), INTEGRATION_USER, NOW)
    assert first["command_id"] == again["envelope"]["command_id"] == f"001-1:upsert:lsn:{change.position.lsn}"
    assert first["causation_ids"] == [f"account/001-1@lsn:{change.position.lsn}"]

    later, _ = account_change(lsns=lsns)
    assert later.position.after(change.position)
    assert command(later, account)["envelope"]["command_id"] != first["command_id"]


def test_the_command_is_a_valid_customer_command_record():
    change, account = account_change()
    value = command(change, account)
    record = model(CUSTOMER_COMMAND).model_validate(value)
    assert CUSTOMER_COMMAND == "io.crmerpsync.erp.commands.CustomerCommand"
    assert record.envelope.lineage.source_offset == 42 and record.envelope.issued_at == NOW
    schema = fastavro.parse_schema(default_index().expanded(CUSTOMER_COMMAND))
    fastavro.schemaless_writer(io.BytesIO(), schema, record.to_avro())


def test_an_account_without_addresses_or_customer_number_is_still_a_valid_command():
    row = sim.account_row("001-1", "ACME GmbH")  # only the countries of the addresses are filled
    change, account = account_change(row)
    value = command(change, account)
    assert value["command"]["customer_number"] is None and value["command"]["bill_to"] is None
    model(CUSTOMER_COMMAND).model_validate(value)


def test_the_command_lineage_carries_the_source_commit_time():
    change, account = account_change()
    record = model(CUSTOMER_COMMAND).model_validate(command(change, account))
    assert record.envelope.lineage.source_ts == dt.datetime.fromtimestamp(change.position.ts_ms / 1000, dt.UTC)


# --- deletes and merges: the account flow ----------------------------------------------------


def _flow_step(tables, change, refs=None, previous=None):
    return account_flow.step(tables, change, previous, refs or FakeReferences(), lineage(change), INTEGRATION_USER, NOW)


def _customer_commands(step):
    return [o.value for o in step.outputs if isinstance(o, CustomerCommand)]


def test_a_deleted_account_deactivates_the_customer_the_erp_was_told_about_once():

    tables = {"customer-views": {}}
    lsns = sim.Lsn()
    change, _ = account_change(lsns=lsns)
    [upsert] = _customer_commands(apply_step(tables, _flow_step(tables, change)))
    assert upsert["command"]["action"] == "UPSERT"
    later, _ = account_change(lsns=lsns)
    delete = replace(later, op=Op.DELETE, fields={})
    [deactivate] = _customer_commands(apply_step(tables, _flow_step(tables, delete)))
    body = deactivate["command"]
    assert body["action"] == "DEACTIVATE" and body["account_id"] == "001-1" and body["name"] == "ACME GmbH"
    assert deactivate["envelope"]["command_id"] == f"001-1:deactivate:{delete.position.label()}"
    assert tables["customer-views"] == {}  # bounded: nothing kept about a deleted account
    assert _customer_commands(_flow_step(tables, delete)) == []  # a second delete: nothing more to say
    model(CUSTOMER_COMMAND).model_validate(deactivate)


def test_an_account_the_erp_never_heard_of_is_deleted_without_a_command():

    change, _ = account_change()
    assert _customer_commands(_flow_step({"customer-views": {}}, replace(change, op=Op.DELETE, fields={}))) == []


def test_a_merged_account_is_merged_into_the_survivors_customer_and_its_later_edits_send_nothing():
    tables = {"customer-views": {}}
    lsns = sim.Lsn()
    change, _ = account_change(lsns=lsns)
    apply_step(tables, _flow_step(tables, change))
    survivor = Account(name="ACME Holding", erp_customer_number="C-2002")
    refs = FakeReferences(accounts={"001-2": survivor})
    merged, _ = account_change(account_row(master_record_id="001-2"), lsns=lsns)
    [merge] = _customer_commands(apply_step(tables, _flow_step(tables, merged, refs)))
    body = merge["command"]
    assert body["action"] == "MERGE" and body["merged_into_account_id"] == "001-2"
    assert body["merged_into_customer_number"] == "C-2002"
    edited, _ = account_change(account_row(master_record_id="001-2", payment_terms="NET60"), lsns=lsns)
    assert _customer_commands(apply_step(tables, _flow_step(tables, edited, refs))) == []
    later, _ = account_change(lsns=lsns)
    assert _customer_commands(_flow_step(tables, replace(later, op=Op.DELETE, fields={}), refs)) == []
    model(CUSTOMER_COMMAND).model_validate(merge)
