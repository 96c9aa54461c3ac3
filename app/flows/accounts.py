"""The account flow: a CRM account change → the account's reference data for every worker and,
when the ERP has something to learn, a customer command (upsert, deactivate, merge) with its audit
record.

What the ERP was last sent about each customer is the flow's state (``customer-views``, keyed by
account id, the flow's outbox beside it): the command is decided against it, not against the
reference data, which the step's own output updates (after a crash between the two sends, a
redelivered change would find the new account already known and send no upsert). A deleted
account's row goes with it (a second delete finds nothing to deactivate); a merged account's row
keeps the MERGE it was sent, so edits to the loser before its delete send nothing.
"""

from __future__ import annotations

import datetime as dt

import orjson

from app.cdc import messages
from app.domain.changes import Lineage, Op, RowChange
from app.domain.customers import MERGE, customer_outputs, retire_customer, upsert_customer
from app.domain.orders.references import Account, References
from app.flows.step import Message, Step, Tables, put

VIEWS = "customer-views"


def step(
    tables: Tables,
    change: RowChange,
    previous: Account | None,
    refs: References,
    lineage: Lineage,
    integration_user: str,
    now: dt.datetime,
) -> Step:
    """``previous``: the account as known before (for the columns the change did not carry);
    ``refs``: the reference data held now (the survivor of a merge). ``Step.info`` is the customer
    command (None when nothing is sent to the ERP)."""
    key = change.row_id.encode()
    raw = tables[VIEWS].get(key)
    sent = orjson.loads(raw) if raw else None
    reference_key = f"account:{change.row_id}".encode()
    if change.op is Op.DELETE:
        command = retire_customer(change, sent, None, None, lineage, now)
        writes = put(tables, VIEWS, key, None)
        gone = Message("sync.reference-data", reference_key, messages.reference(change, {}, True))
        return Step(writes, [gone, *customer_outputs(command, change.row_id, lineage, now)], command)
    kept = {k: getattr(previous, k) for k in change.unavailable} if previous else {}
    account = Account.model_validate({**change.fields, **kept})
    merged_into = account.merged_into if account.merged_into != change.row_id else None
    if merged_into:
        command = retire_customer(change, sent, merged_into, refs.account(merged_into), lineage, now)
    elif sent is not None and sent.get("action") == MERGE:
        command = None  # still merged in the ERP: the loser's edits until its delete change nothing there
    else:
        command = upsert_customer(change, account, sent, lineage, integration_user, now)
    fields = account.model_dump(mode="json")
    outputs = [Message("sync.reference-data", reference_key, messages.reference(change, fields, False))]
    writes = [] if command is None else put(tables, VIEWS, key, orjson.dumps(command["command"]))
    return Step(writes, [*outputs, *customer_outputs(command, change.row_id, lineage, now)], command)
