"""The customer link flow: an ERP customer event → the account's link (``customer-links``, keyed by
account id, the flow's outbox beside it), the link for every worker's reference data (deals parked
on ``CUSTOMER_NOT_LINKED`` resume from it), and the CRM write-back with its audit record.

An answer that disagrees with a CRM-owned field of the account (its payment terms) is an
``OWNERSHIP_CONFLICT`` alert and goes no further: nothing CRM-owned is written from ERP data. The
account's open alerts of this side are a row of the table (``ownership|<account id>``)."""

from __future__ import annotations

import datetime as dt

from app.cdc import messages
from app.domain.changes import Lineage
from app.domain.customer_links import CustomerEvent, CustomerLink, apply, write_back
from app.domain.orders.references import Account
from app.domain.outputs import Output
from app.domain.ownership import ERP_ANSWER_FIELDS, OpenAlerts, Ownership, erp_answer_conflicts, judge
from app.flows.step import Message, Step, Tables, put

LINKS = "customer-links"


def step(
    tables: Tables,
    event: CustomerEvent,
    lineage: Lineage,
    now: dt.datetime,
    account: Account | None = None,
    ownership: Ownership | None = None,
) -> Step:
    """``account``: the CRM account as held now; ``ownership``: None checks no ownership.
    ``Step.info`` is the new link (None when the event changed nothing)."""
    key = event.account_id.encode()
    raw = tables[LINKS].get(key)
    before = CustomerLink.model_validate_json(raw) if raw else None
    after = apply(before, event)
    if after is None:
        return Step()
    reference = Message("sync.reference-data", f"link:{after.account_id}".encode(), messages.link(after))
    writes = put(tables, LINKS, key, after.model_dump_json().encode())
    outputs: list[Output | Message] = [reference, *write_back(before, after, lineage, now)]
    if ownership is not None:
        row = f"ownership|{event.account_id}".encode()
        held = tables[LINKS].get(row)
        alerts = OpenAlerts.model_validate_json(held) if held else OpenAlerts()
        conflicts = erp_answer_conflicts(event.payment_terms, account, ownership.crm_owned)
        why = f"ERP customer event {event.event_id} ({event.kind})"
        outputs += judge(event.account_id, alerts, conflicts, ERP_ANSWER_FIELDS, now, why)
        writes += put(tables, LINKS, row, alerts.model_dump_json().encode() if alerts.seq else None)
    return Step(writes, outputs, after)
