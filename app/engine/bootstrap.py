"""The composition root: the Faust app, its tables, the registry runtime, the outputs, the guard,
and every agent, timer and page, built once when the worker starts, from one ``Settings``.

Nothing in the engine or the agents is built at import time: importing a module reads no
settings, opens no client and raises nothing, so a test or an operator job can import what it
needs, and a bad setting is reported by the worker's start, not by whichever import came first.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.engine.app import build_app
from app.engine.guard import Guard
from app.engine.outputs import Outputs
from app.engine.producer import App
from app.engine.runtime import Runtime
from app.engine.tables import Tables
from app.settings import Settings


@dataclass(frozen=True, slots=True)
class Engine:
    """What the agents and pages are wired with: one of each per worker process."""

    app: App
    settings: Settings
    runtime: Runtime
    tables: Tables
    outputs: Outputs
    guard: Guard


def bootstrap(settings: Settings) -> Engine:
    """The worker's engine with every agent, timer, task and page registered on its app."""
    from app import agents  # the composition root is the one place that knows every agent
    from app.engine import web

    app = build_app(settings)
    runtime = Runtime(settings)
    outputs = Outputs(app, runtime)
    engine = Engine(app, settings, runtime, Tables(app, settings), outputs, Guard(outputs))
    app.task(outputs.warm_encoders)
    agents.register(engine)
    web.register(engine)
    return engine
