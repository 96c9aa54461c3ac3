"""Errors of the local platform."""

from app.domain.errors import ServiceError


class PlatformError(ServiceError):
    """The local platform could not be fetched, started or reached; the message says what to do."""
