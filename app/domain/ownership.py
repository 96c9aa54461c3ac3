"""Field ownership at run time: a CRM edit to an account or opportunity field the ERP owns, or an ERP
answer that disagrees with a field the CRM owns, is an ``OWNERSHIP_CONFLICT`` drift alert with both values.

The owners come from the contracts (``"owner"`` on each field, read at the edge into
``Owners``); what to do about a CRM edit comes from a rule file (``app/rules/ownership.toml``):
``restore`` writes the ERP's value back to the CRM, ``alert`` only reports. The ERP never gets to
write a CRM-owned field: the service carries no such field to the CRM, and an ERP answer that
disagrees with one (the payment terms of a customer, say) is reported the same way.

An alert stays open while its field disagrees and is resolved by the change that makes both sides
agree again; its id is ``<account or opportunity>:owner:<field>:<n>``. Alerts are kept per record
in the state of the flow that sees the disagreement (the account flows, the deal flow). Pure: no
Kafka, no files but the rule file's loader.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from app.domain.audit import alert_audit
from app.domain.customer_links import CustomerLink
from app.domain.orders.deal import Header
from app.domain.orders.references import Account
from app.domain.outputs import DriftAlert, Output
from app.domain.owner_alerts import OpenAlerts
from app.domain.parity.rules import DriftKind

Action = Literal["restore", "alert"]
KIND = DriftKind.OWNERSHIP_CONFLICT


@dataclass(frozen=True, slots=True)
class Rules:
    default: Action
    crm_edit: dict[str, Action]

    def action(self, field: str) -> Action:
        return self.crm_edit.get(field, self.default)


def load(path: Path) -> Rules:
    data = tomllib.loads(path.read_text())
    actions = {"restore", "alert"}
    rules = {str(k): v for k, v in data.get("crm_edit", {}).items()}
    if data.get("default", "alert") not in actions or not set(rules.values()) <= actions:
        raise ValueError(f"{path}: every action must be one of {sorted(actions)}")
    return Rules(data.get("default", "alert"), rules)


@dataclass(frozen=True, slots=True)
class Ownership:
    """Who owns which account field (from the contracts) and what to do about a CRM edit (rules)."""

    rules: Rules
    erp_owned: frozenset[str]
    crm_owned: frozenset[str]


CRM_EDIT_FIELDS = frozenset({"erp_customer_number", "erp_customer_status", "credit_limit", "credit_hold"})
# ERP-owned opportunity field -> the Header field holding what the CRM shows of it
SHOWN = {
    "erp_order_number": "shown_erp_order_number",
    "order_status": "shown_order_status",
    "fulfilment_status": "shown_fulfilment_status",
    "invoice_status": "shown_invoice_status",
    "payment_status": "shown_payment_status",
}
ERP_ANSWER_FIELDS = frozenset({"payment_terms"})


@dataclass(frozen=True, slots=True)
class Conflict:
    field: str
    owner: str  # who owns the field: the side whose value counts
    expected: str | None  # the owner's value
    observed: str | None  # the other side's value


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return str(value.quantize(Decimal("0.01")))
    return str(value)


def crm_edit_conflicts(account: Account, link: CustomerLink, erp_owned: frozenset[str]) -> list[Conflict]:
    """The ERP-owned account fields the CRM shows with another value than the ERP's link. A field
    the CRM shows empty is not a conflict: the write-back fills it."""
    erp_values = {
        "erp_customer_number": link.customer_number,
        "erp_customer_status": str(link.status),
        "credit_limit": link.credit_limit,
        "credit_hold": link.credit_hold,
    }
    found = []
    for field, erp_value in erp_values.items():
        crm_value = getattr(account, field)
        if field in erp_owned and crm_value is not None and _text(crm_value) != _text(erp_value):
            found.append(Conflict(field, "ERP", _text(erp_value), _text(crm_value)))
    return found


def erp_answer_conflicts(
    payment_terms: str | None, account: Account | None, crm_owned: frozenset[str]
) -> list[Conflict]:
    """The CRM-owned account fields an ERP customer answer disagrees with (payment terms)."""
    if account is None or "payment_terms" not in crm_owned or payment_terms is None:
        return []
    if account.payment_terms is None or account.payment_terms == payment_terms:
        return []
    return [Conflict("payment_terms", "CRM", account.payment_terms, payment_terms)]


def deal_edit_conflicts(
    before: Header | None, after: Header, expected: dict[str, Any], erp_owned: frozenset[str]
) -> tuple[list[Conflict], frozenset[str]]:
    """The ERP-owned opportunity fields a CRM change edited to another value than the service wrote
    (only edited ones: a change that merely carries a value the write-back has not reached yet is no
    edit), and the fields the CRM now shows as the ERP has them (their alerts resolve)."""
    conflicts, agree = [], set()
    for field in sorted(erp_owned & set(SHOWN)):
        shown = getattr(after, SHOWN[field])
        if shown is not None and _text(shown) == _text(expected.get(field)):
            agree.add(field)
            continue
        edited = before is None or getattr(before, SHOWN[field]) != shown
        if shown is not None and edited:
            conflicts.append(Conflict(field, "ERP", _text(expected.get(field)), _text(shown)))
    return conflicts, frozenset(agree)


def judge(
    account_id: str,
    alerts: OpenAlerts,
    conflicts: list[Conflict],
    fields: frozenset[str],
    now: dt.datetime,
    why: str,
    open_new: bool = True,
    customer_id: str | None = None,
) -> list[Output]:
    """Open an alert for each conflict not yet open (unless not ``open_new``: the integration
    user's own write-back only resolves), resolve the open ones among ``fields`` (the fields this
    side judges) that no longer disagree; updates ``alerts`` in place. ``account_id``: the record
    the alerts are about (an account, or a deal with its ``customer_id``)."""
    now_ms = int(now.timestamp() * 1000)
    by_field = {c.field: c for c in conflicts}
    outputs: list[Output] = []
    for field in sorted(set(alerts.open) & fields - set(by_field)):
        alert_id = alerts.open.pop(field)
        opened = alerts.opened_at_ms.pop(field, now_ms)
        outputs += _records(account_id, alert_id, None, field, opened, now, why, customer_id)
    for field, c in sorted(by_field.items()):
        if field in alerts.open or not open_new:
            continue
        seq = alerts.seq[field] = alerts.seq.get(field, 0) + 1
        alerts.open[field] = f"{account_id}:owner:{field}:{seq}"
        alerts.opened_at_ms[field] = now_ms
        outputs += _records(account_id, alerts.open[field], c, field, now_ms, now, why, customer_id)
    return outputs


def _records(
    account_id: str,
    alert_id: str,
    c: Conflict | None,
    field: str,
    opened_ms: int,
    now: dt.datetime,
    why: str,
    customer_id: str | None,
) -> list[Output]:
    if c is not None:
        other = "the CRM" if c.owner == "ERP" else "the ERP"
        detail = (f"{why}: {field} is owned by the {c.owner}, which has {c.expected!r}; "
                  f"{other} has {c.observed!r}")  # fmt: skip
    else:
        detail = f"ownership restored: both sides agree on {field} again"
    value = {
        "alert_id": alert_id,
        "kind": KIND,
        "state": "OPEN" if c else "RESOLVED",
        "severity": "MEDIUM",
        "correlation_id": account_id,
        "customer_id": customer_id or account_id,
        "order_number": None,
        "amount_at_risk": None,
        "currency": None,
        "expected": c.expected if c else None,
        "observed": c.observed if c else None,
        "detail": detail,
        "suggested_owner": ("finance-ops" if c.owner == "ERP" else "revops") if c else "none",
        "opened_at": dt.datetime.fromtimestamp(opened_ms / 1000, dt.UTC).isoformat(),
        "resolved_at": None if c else now.isoformat(),
        "observed_at": now.isoformat(),
    }
    return [DriftAlert(alert_id, value), alert_audit(alert_id, c is not None, account_id, account_id, [], detail, now)]
