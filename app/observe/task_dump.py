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
        out.writelines(f"  awaits {line}\n" for line in awaited(task.get_coro()))
    return out.getvalue()


def awaited(coro: object) -> list[str]:
    """Where each coroutine in the chain ``coro`` awaits, outermost first, down to the innermost one.

    Why: a task's stack shows only the frame of its own coroutine (an agent's actor shows
    ``await coro`` and nothing of the handler inside it), which hides what a stalled agent waits for.
    """
    lines = []
    for _ in range(40):  # a chain this deep is a loop, not a call stack
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:
            break
        lines.append(f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return lines


def install(loop: asyncio.AbstractEventLoop) -> None:
    loop.add_signal_handler(signal.SIGUSR1, lambda: log.warning("task dump (SIGUSR1):\n%s", dump_tasks()))
