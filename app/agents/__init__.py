"""Agents: thin decode → domain → send loops, one module per flow; they talk only through topics."""

from app.agents import crm_ingest, deals, erp_ingest, exceptions, live, parity, probe, retry  # noqa: F401
