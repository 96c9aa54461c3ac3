"""The account flow: a CRM account change → the account's reference data for every worker and,
when the ERP has something to learn, a customer command (upsert, deactivate, merge) with its audit
record.

What the ERP was last sent about each customer is the flow's state (``customer-views``, keyed by
account id, the flow's outbox beside it): the command is decided against it, not against the
reference data, which the step's own output updates (after a crash between the two sends, a
redelivered change would find the new account already known and send no upsert). A deleted
account's row goes with it (a second delete finds nothing to deactivate); a merged account's row
keeps the MERGE it was sent, so edits to the loser before its delete send nothing.

Field ownership: a CRM user's edit to an ERP-owned account field (the customer number, status,
credit limit or hold the ERP's link gave) opens an ``OWNERSHIP_CONFLICT`` alert and, per the rule
file, restores the ERP's values through a CRM update; the change that makes both agree again
(the integration user's restore coming back through CDC, say) resolves it. The account's open
alerts are a row of this table too (``ownership|<account id>``).
"""

from __future__ import annotations

import datetime as dt

import orjson

from app.cdc import messages
from app.domain.changes import Lineage, Op, RowChange, keep
from app.domain.customer_links import account_update
from app.domain.customers import MERGE, customer_outputs, retire_customer, upsert_customer
from app.domain.orders.references import Account, References
from app.domain.outputs import Output
from app.domain.ownership import CRM_EDIT_FIELDS, OpenAlerts, Ownership, crm_edit_conflicts, judge
from app.flows.step import Message, Step, Tables, Write, put

VIEWS = "customer-views"


def step(
    tables: Tables,
    change: RowChange,
    previous: Account | None,
    refs: References,
    lineage: Lineage,
    integration_user: str,
    now: dt.datetime,
    ownership: Ownership | None = None,
) -> Step:
    """``previous``: the account as known before (for the columns the change did not carry);
    ``refs``: the reference data held now (the survivor of a merge, the ERP's link); ``ownership``:
    None checks no ownership. ``Step.info`` is the customer command (None when nothing is sent to
    the ERP)."""
    key = change.row_id.encode()
    raw = tables[VIEWS].get(key)
    sent = orjson.loads(raw) if raw else None
    reference_key = f"account:{change.row_id}".encode()
    if change.op is Op.DELETE:
        command = retire_customer(change, sent, None, None, lineage, now)
        writes = put(tables, VIEWS, key, None) + put(tables, VIEWS, f"ownership|{change.row_id}".encode(), None)
        gone = Message("sync.reference-data", reference_key, messages.reference(change, {}, True))
        return Step(writes, [gone, *customer_outputs(command, change.row_id, lineage, now)], command)
    base = previous.model_dump() if previous is not None else None
    account = Account.model_validate(keep(change.fields, change.unavailable, base))
    merged_into = account.merged_into if account.merged_into != change.row_id else None
    if merged_into:
        command = retire_customer(change, sent, merged_into, refs.account(merged_into), lineage, now)
    elif sent is not None and sent.get("action") == MERGE:
        command = None  # still merged in the ERP: the loser's edits until its delete change nothing there
    else:
        command = upsert_customer(change, account, sent, lineage, integration_user, now)
    fields = account.model_dump(mode="json")
    outputs: list[Output | Message] = [
        Message("sync.reference-data", reference_key, messages.reference(change, fields, False))
    ]
    writes = [] if command is None else put(tables, VIEWS, key, orjson.dumps(command["command"]))
    outputs += customer_outputs(command, change.row_id, lineage, now)
    if ownership is not None:
        owned_writes, owned_outputs = _ownership(
            tables, change, account, refs, lineage, integration_user, now, ownership
        )
        writes += owned_writes
        outputs += owned_outputs
    return Step(writes, outputs, command)


def _ownership(
    tables: Tables,
    change: RowChange,
    account: Account,
    refs: References,
    lineage: Lineage,
    integration_user: str,
    now: dt.datetime,
    ownership: Ownership,
) -> tuple[list[Write], list[Output]]:
    link = refs.link(change.row_id)
    row = f"ownership|{change.row_id}".encode()
    raw = tables[VIEWS].get(row)
    if link is None and raw is None:
        return [], []
    alerts = OpenAlerts.model_validate_json(raw) if raw else OpenAlerts()
    conflicts = [] if link is None else crm_edit_conflicts(account, link, ownership.erp_owned)
    user = account.last_modified_by
    by_us = change.by_integration or user == integration_user
    why = f"CRM user {user or 'unknown'} edited account {change.row_id}"
    outputs = judge(change.row_id, alerts, conflicts, CRM_EDIT_FIELDS, now, why, open_new=not by_us)
    restore = [c for c in conflicts if ownership.rules.action(c.field) == "restore"]
    if restore and link is not None and not by_us:
        label = change.position.label()
        outputs += account_update(link, f"{change.row_id}:restore:{label}", f"{change.table}/{change.row_id}@{label}",
                                  lineage, now)  # fmt: skip
    stored = None if not alerts.open and not alerts.seq else alerts.model_dump_json().encode()
    return put(tables, VIEWS, row, stored), outputs
