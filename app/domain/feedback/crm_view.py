"""The CRM's view of a deal's order: the ERP-owned fields a CRM update carries.

Sent after every ERP event (``app.domain.feedback.fold``) and to restore what a CRM user overwrote
(``app.domain.orders.decide``, per the ownership rules). No Faust, no I/O.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from app.domain.changes import Lineage
from app.domain.envelope import command_envelope
from app.domain.feedback.lifecycle import ErpView, crm_fields
from app.domain.orders.deal import DealState
from app.domain.outputs import CrmUpdate
from app.domain.parity.drift import money


def crm_update(
    state: DealState, command_id: str, causation: list[str], lineage: Lineage, now: dt.datetime
) -> CrmUpdate:
    erp = state.erp or ErpView()
    cancelled = state.order is None and bool(state.cancelled_orders)
    value: dict[str, Any] = {
        "envelope": command_envelope(command_id, state.opportunity_id, causation, lineage, None, now),
        "opportunity_id": state.opportunity_id,
        "account_id": state.header.account_id if state.header else None,
        **crm_fields(erp, cancelled),
        "amount_invoiced": money(erp.invoiced) if erp.invoices else None,
        "amount_paid": money(erp.paid) if erp.payments else None,
        "currency": erp.invoice_currency or erp.accepted_currency,
        "service_activated_at": _iso(erp.activated_at_ms),
        "customer_accepted_at": _iso(erp.customer_accepted_at_ms),
    }
    return CrmUpdate(state.opportunity_id, value)


def _iso(ms: int | None) -> str | None:
    return None if ms is None else dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat()
