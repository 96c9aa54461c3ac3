"""Agents: thin decode → domain → send loops, one module per flow; they talk only through topics.

Each module's ``register(engine)`` declares its topics, agents and timers on the engine's app; the
composition root (app/engine/bootstrap.py) calls them once at start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.agents import alerts, crm_ingest, deals, erp_ingest, exceptions, live, parity, probe, retry

if TYPE_CHECKING:
    from app.engine.bootstrap import Engine


def register(engine: Engine) -> None:
    for module in (crm_ingest, deals, erp_ingest, exceptions, alerts, parity, probe, live):
        module.register(engine)
    retry.register(engine)  # last: a due message may return to any topic the other agents read
