"""``crm-erp-sync worker``: the event loop chosen first, then the Faust app built and run."""

from __future__ import annotations


def main(loglevel: str = "info", web: bool = True) -> int:
    import mode.loop

    mode.loop.use("uvloop")  # before the app exists: libuv's loop costs less per event than asyncio's
    from app.engine.app import run_worker

    return run_worker(loglevel, web=web)
