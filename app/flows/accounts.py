"""The account flow: a CRM account change → the account's reference data for every worker and,
when the ERP has something to learn, an ``UpsertCustomer`` with its audit record.

What the ERP was last sent about each customer is the flow's state (``customer-views``, keyed by
account id, the flow's outbox beside it): the upsert is decided against it, not against the
reference data, which the step's own output updates (after a crash between the two sends, a
redelivered change would find the new account already known and send no upsert).
"""

from __future__ import annotations

import datetime as dt

import orjson

from app.cdc import messages
from app.domain.changes import Lineage, RowChange
from app.domain.customers import customer_outputs, upsert_customer
from app.domain.orders.references import Account
from app.flows.step import Message, Step, Tables, put

VIEWS = "customer-views"


def step(
    tables: Tables,
    change: RowChange,
    previous: Account | None,
    lineage: Lineage,
    integration_user: str,
    now: dt.datetime,
) -> Step:
    """``previous``: the account as known before (for the columns the change did not carry).
    ``Step.info`` is the upsert command (None when nothing is sent to the ERP)."""
    kept = {k: getattr(previous, k) for k in change.unavailable} if previous else {}
    account = Account.model_validate({**change.fields, **kept})
    key = change.row_id.encode()
    raw = tables[VIEWS].get(key)
    command = upsert_customer(change, account, orjson.loads(raw) if raw else None, lineage, integration_user, now)
    reference = messages.reference(change, account.model_dump(mode="json"), False)
    outputs = [Message("sync.reference-data", f"account:{change.row_id}".encode(), reference)]
    writes = [] if command is None else put(tables, VIEWS, key, orjson.dumps(command["command"]))
    return Step(writes, [*outputs, *customer_outputs(command, change.row_id, lineage, now)], command)
