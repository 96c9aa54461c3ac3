"""The service's one root exception and the reason codes every rejection carries."""

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
    # infrastructure that may recover by itself: retried
    REGISTRY_UNAVAILABLE = "REGISTRY_UNAVAILABLE"
    # a bug or an input shape nobody foresaw: quarantined with the traceback summary
    UNEXPECTED_ERROR = "UNEXPECTED_ERROR"


class SyncError(Exception):
    """Root of every error the service raises on purpose; ``reason`` says why, ``transient`` if retrying helps."""

    transient = False

    def __init__(self, reason: ReasonCode, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class TransientError(SyncError):
    """A dependency (registry, broker) did not answer; the same input may succeed later."""

    transient = True
