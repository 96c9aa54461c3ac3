"""The ownership alerts open on one record (an account, a deal), by field: kept in that record's state."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class OpenAlerts(BaseModel):
    """The ownership alerts open on one record, by field, and how often each field opened one."""

    model_config = ConfigDict(extra="forbid")

    open: dict[str, str] = {}  # field -> alert id
    opened_at_ms: dict[str, int] = {}
    seq: dict[str, int] = {}
