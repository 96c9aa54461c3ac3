"""Errors of the local platform."""


class PlatformError(Exception):
    """The local platform could not be fetched, started or reached; the message says what to do."""
