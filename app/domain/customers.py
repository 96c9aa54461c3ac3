"""Account changes → ``UpsertCustomer`` for the ERP, carrying only what the ERP needs.

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

ALLOWED_FIELDS = frozenset(
    {
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
    if account.last_modified_by == integration_user:
        return None  # our own write-back (e.g. the ERP customer number): never echo it
    view = erp_view(change.row_id, account)
    if sent == view:
        return None
    command_id = f"{change.row_id}:upsert:{change.position.label()}"
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
