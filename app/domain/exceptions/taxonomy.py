"""The exception taxonomy: for every reason code, its type, severity, owner and SLA, in one place.

Operators route and prioritise by these; dashboards group by them. Changing a row here changes
what every new exception record says (records already emitted keep what they said).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from app.domain.errors import ReasonCode as R


class ExceptionType(StrEnum):
    DATA_VALIDATION = "DATA_VALIDATION"
    MAPPING = "MAPPING"
    DEPENDENCY_MISSING = "DEPENDENCY_MISSING"
    CONTRACT_SCHEMA = "CONTRACT_SCHEMA"
    TRANSIENT_INFRASTRUCTURE = "TRANSIENT_INFRASTRUCTURE"
    POISON_INPUT = "POISON_INPUT"
    ERP_REJECTION = "ERP_REJECTION"


class Severity(StrEnum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"


@dataclass(frozen=True, slots=True)
class Classification:
    type: ExceptionType
    severity: Severity
    owner_team: str
    sla_minutes: int
    customer_facing: bool = False

    @property
    def parks(self) -> bool:
        """A missing dependency parks the record until it arrives instead of rejecting it."""
        return self.type is ExceptionType.DEPENDENCY_MISSING


T, S = ExceptionType, Severity
_DAY = 24 * 60

TAXONOMY: dict[R, Classification] = {
    R.NULL_VALUE: Classification(T.POISON_INPUT, S.MEDIUM, "integration-platform", _DAY),
    R.TRUNCATED_FRAME: Classification(T.POISON_INPUT, S.HIGH, "integration-platform", 4 * 60),
    R.BAD_MAGIC_BYTE: Classification(T.POISON_INPUT, S.HIGH, "integration-platform", 4 * 60),
    R.UNKNOWN_SCHEMA_ID: Classification(T.CONTRACT_SCHEMA, S.HIGH, "integration-platform", 4 * 60),
    R.AVRO_DECODE_ERROR: Classification(T.POISON_INPUT, S.HIGH, "integration-platform", 4 * 60),
    R.SCHEMA_MISMATCH: Classification(T.CONTRACT_SCHEMA, S.HIGH, "integration-platform", 4 * 60),
    R.NOT_A_CDC_EVENT: Classification(T.POISON_INPUT, S.MEDIUM, "integration-platform", _DAY),
    R.BAD_CONTROL_HEADER: Classification(T.POISON_INPUT, S.CRITICAL, "integration-platform", 60),
    R.MAPPING_ERROR: Classification(T.MAPPING, S.HIGH, "integration-platform", 4 * 60),
    R.REGISTRY_UNAVAILABLE: Classification(T.TRANSIENT_INFRASTRUCTURE, S.HIGH, "integration-platform", 30),
    R.BROKER_METADATA: Classification(T.TRANSIENT_INFRASTRUCTURE, S.HIGH, "integration-platform", 30),
    R.NO_LINES: Classification(T.DATA_VALIDATION, S.HIGH, "sales-ops", 4 * 60, customer_facing=True),
    R.INVALID_QUANTITY: Classification(T.DATA_VALIDATION, S.HIGH, "sales-ops", 4 * 60, customer_facing=True),
    R.PRICE_OUT_OF_POLICY: Classification(T.DATA_VALIDATION, S.HIGH, "deal-desk", 4 * 60, customer_facing=True),
    R.AMOUNT_MISMATCH: Classification(T.DATA_VALIDATION, S.HIGH, "deal-desk", 4 * 60, customer_facing=True),
    R.MISSING_CURRENCY: Classification(T.DATA_VALIDATION, S.HIGH, "sales-ops", 4 * 60, customer_facing=True),
    R.UNSUPPORTED_CURRENCY: Classification(T.DATA_VALIDATION, S.HIGH, "deal-desk", 4 * 60, customer_facing=True),
    R.MISSING_PAYMENT_TERMS: Classification(T.DATA_VALIDATION, S.MEDIUM, "finance-ops", _DAY, customer_facing=True),
    R.MISSING_BILLING_SCHEDULE: Classification(T.DATA_VALIDATION, S.MEDIUM, "finance-ops", _DAY, customer_facing=True),
    R.MISSING_TAX_TREATMENT: Classification(T.DATA_VALIDATION, S.MEDIUM, "finance-ops", _DAY, customer_facing=True),
    R.MISSING_BILL_TO: Classification(T.DATA_VALIDATION, S.MEDIUM, "sales-ops", _DAY, customer_facing=True),
    R.MISSING_SHIP_TO: Classification(T.DATA_VALIDATION, S.MEDIUM, "sales-ops", _DAY, customer_facing=True),
    R.PRODUCT_NOT_MAPPED: Classification(T.MAPPING, S.HIGH, "product-ops", 4 * 60, customer_facing=True),
    R.CLOSE_DATE_OUT_OF_RANGE: Classification(T.DATA_VALIDATION, S.MEDIUM, "sales-ops", _DAY, customer_facing=True),
    R.UNKNOWN_PRODUCT: Classification(T.DEPENDENCY_MISSING, S.MEDIUM, "product-ops", 60),
    R.MISSING_PRICE_BOOK_ENTRY: Classification(T.DEPENDENCY_MISSING, S.MEDIUM, "product-ops", 60),
    R.UNKNOWN_ACCOUNT: Classification(T.DEPENDENCY_MISSING, S.MEDIUM, "sales-ops", 60),
    R.CUSTOMER_NOT_LINKED: Classification(T.DEPENDENCY_MISSING, S.MEDIUM, "finance-ops", 60),
    R.AWAITING_RESYNC: Classification(T.DEPENDENCY_MISSING, S.HIGH, "crm-platform", 60),
    R.ERP_REJECTED: Classification(T.ERP_REJECTION, S.HIGH, "order-management", 4 * 60, customer_facing=True),
    R.TRUNCATE_NOT_APPLIED: Classification(T.DATA_VALIDATION, S.CRITICAL, "crm-platform", 60),
    R.MESSAGE_TOO_LARGE: Classification(T.POISON_INPUT, S.HIGH, "integration-platform", 4 * 60),
    R.UNEXPECTED_ERROR: Classification(T.POISON_INPUT, S.HIGH, "integration-platform", 4 * 60),
    R.QUARANTINE_FAILED: Classification(T.POISON_INPUT, S.CRITICAL, "integration-platform", 60),
}


def classify(reason: R) -> Classification:
    return TAXONOMY[reason]


def markdown_table() -> str:
    """The taxonomy as the README shows it (a test keeps the two equal)."""
    rows = ["| reason code | type | severity | owner team | SLA (min) | customer-facing |", "|---|---|---|---|---|---|"]
    for reason, c in TAXONOMY.items():
        facing = "yes" if c.customer_facing else "no"
        rows.append(f"| `{reason}` | {c.type} | {c.severity} | {c.owner_team} | {c.sla_minutes} | {facing} |")
    return "\n".join(rows) + "\n"
