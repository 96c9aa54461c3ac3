"""What each outbound flow may carry: an explicit field allow-list per kind of command.

Data minimisation is decided here, field by field, not inherited from whatever a contract
happens to hold: a field a contract gains reaches the ERP or the CRM only once it is added below
(the tests compare every outbound contract and every command the domain builds with these lists).

Paths are dotted; ``[]`` marks the items of an array; union branches share their record's path.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from app.domain.customers import ALLOWED_FIELDS as CUSTOMER_FIELDS
from app.domain.feedback.fold import CRM_UPDATE_IDENTITY, CRM_WRITABLE
from app.domain.outputs import CrmAccountUpdate, CrmUpdate, CustomerCommand, Output, SalesOrderCommand

_ADDRESS = ("street", "city", "postal_code", "state", "country")
ENVELOPE = frozenset(
    {
        "envelope.command_id",
        "envelope.correlation_id",
        "envelope.causation_ids[]",
        "envelope.contract_version",
        "envelope.issued_at",
        "envelope.issued_by",
        *(
            f"envelope.lineage.{f}"
            for f in ("source_topic", "source_partition", "source_offset", "schema_id", "source_position", "source_ts")
        ),
    }
)
_ORDER_LINE = (
    "line_id",
    "sku",
    "erp_item_code",
    "quantity",
    "list_price",
    "unit_price",
    "discount_percent",
    "net_amount",
    "currency",
    "tax_code",
    "service_start_date",
    "service_end_date",
)
_ORDER_HEADER = (
    "opportunity_id",
    "quote_id",
    "account_id",
    "customer_number",
    "order_number",  # amend / cancel
    "reason",  # cancel
    "order_date",
    "currency",
    "amount",
    "payment_terms",
    "billing_schedule",
    "contract_term_months",
    "tax_code",
    "tax_exempt",
)
_ADDRESSES = tuple(f"{side}.{part}" for side in ("bill_to", "ship_to") for part in _ADDRESS)

OUTBOUND: dict[type[Output], frozenset[str]] = {
    SalesOrderCommand: ENVELOPE
    | {f"command.{f}" for f in (*_ORDER_HEADER, *_ADDRESSES)}
    | {f"command.lines[].{f}" for f in _ORDER_LINE}
    | {"command.changed_fields[]"},  # amend: the names of the terms it changes
    CustomerCommand: ENVELOPE
    | {f"command.{f}" for f in CUSTOMER_FIELDS - {"bill_to", "ship_to"}}
    | {f"command.{f}" for f in _ADDRESSES},
    CrmUpdate: ENVELOPE | CRM_UPDATE_IDENTITY - {"envelope"} | CRM_WRITABLE,
    CrmAccountUpdate: ENVELOPE
    | {"account_id", "erp_customer_number", "erp_customer_status", "credit_limit", "currency", "credit_hold"},
}


def paths(value: Any, prefix: str = "") -> Iterator[str]:
    """The dotted paths of ``value``'s non-null leaves."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from paths(v, f"{prefix}.{k}" if prefix else k)
    elif isinstance(value, list):
        for v in value:
            yield from paths(v, f"{prefix}[]")
    elif value is not None:
        yield prefix


def outside(kind: type[Output], value: dict[str, Any]) -> list[str]:
    """The fields of a ``kind`` message that its allow-list does not permit (sorted)."""
    allowed = OUTBOUND[kind]
    return sorted({p for p in paths(value) if p not in allowed})
