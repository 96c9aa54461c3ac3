"""The customer link flow: an ERP customer event → the account's link (``customer-links``, keyed by
account id, the flow's outbox beside it), the link for every worker's reference data (deals parked
on ``CUSTOMER_NOT_LINKED`` resume from it), and the CRM write-back with its audit record."""

from __future__ import annotations

import datetime as dt

from app.cdc import messages
from app.domain.changes import Lineage
from app.domain.customer_links import CustomerEvent, CustomerLink, apply, write_back
from app.flows.step import Message, Step, Tables, put

LINKS = "customer-links"


def step(tables: Tables, event: CustomerEvent, lineage: Lineage, now: dt.datetime) -> Step:
    """``Step.info`` is the new link (None when the event changed nothing)."""
    key = event.account_id.encode()
    raw = tables[LINKS].get(key)
    before = CustomerLink.model_validate_json(raw) if raw else None
    after = apply(before, event)
    if after is None:
        return Step()
    reference = Message("sync.reference-data", f"link:{after.account_id}".encode(), messages.link(after))
    writes = put(tables, LINKS, key, after.model_dump_json().encode())
    return Step(writes, [reference, *write_back(before, after, lineage, now)], after)
