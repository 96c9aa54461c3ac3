"""``crm-erp-sync worker``: the event loop chosen first, then the engine built and run."""

from __future__ import annotations


def main(loglevel: str = "info", web: bool = True) -> int:
    """Run the worker in the foreground until SIGTERM/SIGINT."""
    import mode.loop

    mode.loop.use("uvloop")  # before the app exists: libuv's loop costs less per event than asyncio's
    import faust

    from app.engine.bootstrap import bootstrap
    from app.observe.logs import logging_config
    from app.settings import get_settings

    settings = get_settings()
    engine = bootstrap(settings)
    config = logging_config(loglevel, settings.log_format)
    worker = faust.Worker(engine.app, loglevel=loglevel, override_logging=True, logging_config=config)
    if not web:
        engine.app.conf.web_enabled = False
    worker.execute_from_commandline()
    return 0
