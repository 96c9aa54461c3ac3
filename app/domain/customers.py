"""Account changes → customer commands for the ERP, carrying only what the ERP needs.

An account created or edited is an UPSERT; an account deleted in the CRM DEACTIVATEs its ERP
customer; an account merged into another (the CRM's merge keeps the survivor and marks the
loser with ``merged_into`` before deleting it) is a MERGE into the survivor's customer. Deactivate
and merge are sent only for a customer the ERP was told about, and once: the loser's later delete
sends nothing more.

Data minimisation: the command is built from an explicit allow-list; phone, website, industry,
revenue and every other CRM account column never leave the CRM through this flow.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from app.domain.audit import command_audit
from app.domain.changes import Lineage, RowChange
from app.domain.envelope import command_envelope
from app.domain.orders.references import Account
from app.domain.outputs import CustomerCommand, Output

UPSERT, DEACTIVATE, MERGE = "UPSERT", "DEACTIVATE", "MERGE"  # io.crmerpsync.erp.commands.CustomerAction
ALLOWED_FIELDS = frozenset(
    {
        "action",
        "merged_into_account_id",
        "merged_into_customer_number",
        "account_id",
        "name",
        "customer_number",
        "bill_to",
        "ship_to",
        "payment_terms",
        "tax_exempt",
        "tax_code",
        "currency",
    }
)


def _address(a) -> dict[str, Any] | None:
    if a is None or not a.complete:
        return None
    return {"street": a.street, "city": a.city, "state": None, "postal_code": a.postal_code, "country": a.country}


def erp_view(account_id: str, account: Account) -> dict[str, Any]:
    """The allow-listed fields the ERP keeps about a customer."""
    view = {
        "action": UPSERT,
        "merged_into_account_id": None,
        "merged_into_customer_number": None,
        "account_id": account_id,
        "name": account.name or "",
        "customer_number": account.erp_customer_number,
        "bill_to": _address(account.bill_to),
        "ship_to": _address(account.ship_to),
        "payment_terms": account.payment_terms,
        "tax_exempt": account.tax_exempt,
        "tax_code": account.tax_code,
        "currency": None,
    }
    assert set(view) == ALLOWED_FIELDS
    return view


def upsert_customer(
    change: RowChange,
    account: Account,
    sent: dict[str, Any] | None,
    lineage: Lineage,
    integration_user: str,
    now: dt.datetime,
) -> dict[str, Any] | None:
    """The CustomerCommand value for an account change, or None when the ERP has nothing to learn
    (``sent``: the view the ERP was last sent, None if none)."""
    if change.by_integration or account.last_modified_by == integration_user:
        return None  # our own write-back (e.g. the ERP customer number): never echo it
    view = erp_view(change.row_id, account)
    if sent == view:
        return None
    return _command(change, view, lineage, now)


def retire_customer(
    change: RowChange,
    sent: dict[str, Any] | None,
    merged_into: str | None,
    survivor: Account | None,
    lineage: Lineage,
    now: dt.datetime,
) -> dict[str, Any] | None:
    """The DEACTIVATE (``merged_into`` None) or MERGE command for an account deleted or merged in
    the CRM; None when the ERP never heard of the customer or was already told it is gone.
    ``survivor``: the account merged into, as known now (its ERP customer number, if linked)."""
    if sent is None or sent.get("action", UPSERT) != UPSERT:
        return None
    view = {**sent, "action": MERGE if merged_into else DEACTIVATE}
    if merged_into:
        view["merged_into_account_id"] = merged_into
        view["merged_into_customer_number"] = survivor.erp_customer_number if survivor else None
    return _command(change, view, lineage, now)


def _command(change: RowChange, view: dict[str, Any], lineage: Lineage, now: dt.datetime) -> dict[str, Any]:
    action = view["action"].lower()
    command_id = f"{change.row_id}:{action}:{change.position.label()}"
    causation = [f"{change.table}/{change.row_id}@{change.position.label()}"]
    envelope = command_envelope(command_id, change.row_id, causation, lineage, change.position.label(), now)
    return {"envelope": envelope, "command": view}


def customer_outputs(command: dict[str, Any] | None, account_id: str, lineage: Lineage, now) -> list[Output]:
    """What an account change sends: the UpsertCustomer (if any) and its audit record."""
    if command is None:
        return []
    command_id = command["envelope"]["command_id"]
    return [
        CustomerCommand(account_id, command),
        command_audit(command_id, account_id, [lineage.coordinates], CustomerCommand, now),
    ]
