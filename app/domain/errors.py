"""The service's one root exception (``ServiceError``) and the reason codes every rejection carries."""

from __future__ import annotations

from enum import StrEnum


class ReasonCode(StrEnum):
    """Why a record was not applied. Stable strings: they are data on topics and in dashboards."""

    # input that can never be decoded: quarantined to the dead-letter topic
    NULL_VALUE = "NULL_VALUE"
    TRUNCATED_FRAME = "TRUNCATED_FRAME"
    BAD_MAGIC_BYTE = "BAD_MAGIC_BYTE"
    UNKNOWN_SCHEMA_ID = "UNKNOWN_SCHEMA_ID"
    AVRO_DECODE_ERROR = "AVRO_DECODE_ERROR"
    SCHEMA_MISMATCH = "SCHEMA_MISMATCH"
    NOT_A_CDC_EVENT = "NOT_A_CDC_EVENT"
    BAD_CONTROL_HEADER = "BAD_CONTROL_HEADER"  # a service header (x-retry-*, x-replay-*) the service did not write
    # a CDC row the declarative mapping cannot turn into canonical fields
    MAPPING_ERROR = "MAPPING_ERROR"
    # infrastructure that may recover by itself: retried
    REGISTRY_UNAVAILABLE = "REGISTRY_UNAVAILABLE"
    BROKER_METADATA = "BROKER_METADATA"  # the broker's view of a topic is not (yet) what it must be
    # commercial completeness of a closed-won deal (data validation)
    NO_LINES = "NO_LINES"
    INVALID_QUANTITY = "INVALID_QUANTITY"
    PRICE_OUT_OF_POLICY = "PRICE_OUT_OF_POLICY"
    AMOUNT_MISMATCH = "AMOUNT_MISMATCH"
    MISSING_CURRENCY = "MISSING_CURRENCY"
    UNSUPPORTED_CURRENCY = "UNSUPPORTED_CURRENCY"
    MISSING_PAYMENT_TERMS = "MISSING_PAYMENT_TERMS"
    MISSING_BILLING_SCHEDULE = "MISSING_BILLING_SCHEDULE"
    MISSING_TAX_TREATMENT = "MISSING_TAX_TREATMENT"
    MISSING_BILL_TO = "MISSING_BILL_TO"
    MISSING_SHIP_TO = "MISSING_SHIP_TO"
    PRODUCT_NOT_MAPPED = "PRODUCT_NOT_MAPPED"
    CLOSE_DATE_OUT_OF_RANGE = "CLOSE_DATE_OUT_OF_RANGE"
    # a dependency that has not arrived yet: the deal is parked, not rejected
    UNKNOWN_PRODUCT = "UNKNOWN_PRODUCT"
    MISSING_PRICE_BOOK_ENTRY = "MISSING_PRICE_BOOK_ENTRY"
    UNKNOWN_ACCOUNT = "UNKNOWN_ACCOUNT"
    CUSTOMER_NOT_LINKED = "CUSTOMER_NOT_LINKED"
    AWAITING_RESYNC = "AWAITING_RESYNC"  # the source lost a change of the deal's records: waits for a full image
    # the ERP refused a command
    ERP_REJECTED = "ERP_REJECTED"
    # a CRM truncate: reported, never applied as a mass delete
    TRUNCATE_NOT_APPLIED = "TRUNCATE_NOT_APPLIED"
    # a record larger than Kafka lets the service forward: dead-lettered without its payload
    MESSAGE_TOO_LARGE = "MESSAGE_TOO_LARGE"
    # a bug or an input shape nobody foresaw: quarantined with the error summary
    UNEXPECTED_ERROR = "UNEXPECTED_ERROR"
    # the full quarantine record could not be built or sent: a minimal one (coordinates, reason) took its place
    QUARANTINE_FAILED = "QUARANTINE_FAILED"


class ServiceError(Exception):
    """Root of every error the service raises on purpose: an input it rejects (``SyncError``, with
    its reason code), or a job that cannot do what it was asked (the message says why and what to
    check). Anything else that escapes is a bug."""


class SyncError(ServiceError):
    """An input the service rejects; ``reason`` says why.

    ``transient`` says whether retrying the same input can help.
    """

    transient = False

    def __init__(self, reason: ReasonCode, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class TransientError(SyncError):
    """A dependency (registry, broker) did not answer; the same input may succeed later."""

    transient = True
