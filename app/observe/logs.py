"""Structured logs: one JSON object per line, carrying the deal and message a line is about.

The guard sets the context of the event being handled (correlation id, source coordinates) for
the duration of its handler, and every line logged meanwhile carries it, so a log search by deal
id finds the deal's commands, exceptions and alerts. Messages, tracebacks and stack traces pass
through ``mask_text`` in the formatters: logs never hold personal data, not even in the text of
an exception that quotes a record.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from app.domain.masking import mask_text

_context: ContextVar[dict[str, Any] | None] = ContextVar("crm_erp_sync_log_context", default=None)
CONTEXT_FIELDS = ("correlation_id", "command_id", "exception_id", "source", "reason_code")


@contextmanager
def context(**fields: Any) -> Iterator[None]:
    """Attach ``fields`` (see ``CONTEXT_FIELDS``) to every line logged inside the block."""
    token = _context.set({**(_context.get() or {}), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    """Adds the current context to each record and masks personal data in its message."""

    def filter(self, record: logging.LogRecord) -> bool:
        for k, v in (_context.get() or {}).items():
            if not hasattr(record, k):
                setattr(record, k, v)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string is logged as it is, not lost
            message = str(record.msg)
        record.msg, record.args = mask_text(message), None
        return True


class _Masking:
    """Masks what a formatter adds besides the message: the traceback and the stack."""

    def formatException(self, ei) -> str:
        return mask_text(super().formatException(ei))  # type: ignore[misc]

    def formatStack(self, stack_info: str) -> str:
        return mask_text(super().formatStack(stack_info))  # type: ignore[misc]


class MaskingJsonFormatter(_Masking, JsonFormatter):
    """One JSON object per line, personal data masked in the traceback too."""


class MaskingTextFormatter(_Masking, logging.Formatter):
    """Plain lines, personal data masked in the traceback too."""


def logging_config(level: str | int, fmt: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the worker: JSON (``fmt="json"``) or plain text lines."""
    formatters = {
        "json": {
            "()": MaskingJsonFormatter,
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "ts", "levelname": "level", "name": "logger"},
            "timestamp": False,
        },
        "text": {
            "()": MaskingTextFormatter,
            "fmt": "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s",
        },
    }
    if fmt not in formatters:
        raise ValueError(f"CRM_ERP_LOG_FORMAT must be json or text, not {fmt!r}")
    level = level.upper() if isinstance(level, str) else level
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter}},
        "formatters": {fmt: formatters[fmt]},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": fmt,
                "filters": ["context"],
                "level": level,
            }
        },
        "root": {"level": level, "handlers": ["default"]},
        # one INFO line per HTTP request of the registry clients (the source check asks every 15 s)
        "loggers": {name: {"level": "WARNING"} for name in ("httpx", "httpx2")},
    }
