"""``kill -USR1 <worker pid>``: every asyncio task of the worker and where it waits, in its log.

For a worker that is up but does nothing (a stall): the stacks say which await holds the drain
loop, the fetcher or an agent. Installed when the worker starts; costs nothing until the signal.
"""

from __future__ import annotations

import asyncio
import io
import logging
import signal

log = logging.getLogger(__name__)


def dump_tasks() -> str:
    """The stack of every task of the running loop, as text."""
    out = io.StringIO()
    tasks = sorted(asyncio.all_tasks(), key=lambda t: t.get_name())
    out.write(f"{len(tasks)} asyncio tasks\n")
    for task in tasks:
        out.write(f"--- {task.get_name()} {task.get_coro()!r}\n")
        task.print_stack(limit=12, file=out)
    return out.getvalue()


def install(loop: asyncio.AbstractEventLoop) -> None:
    loop.add_signal_handler(signal.SIGUSR1, lambda: log.warning("task dump (SIGUSR1):\n%s", dump_tasks()))
