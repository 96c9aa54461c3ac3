"""``kill -USR1``'s task dump names the innermost await of every task, not only its outer frame."""

from __future__ import annotations

import asyncio

from app.observe.task_dump import dump_tasks


async def _handler(gate: asyncio.Event) -> None:
    await gate.wait()


async def _actor(gate: asyncio.Event) -> None:
    await _handler(gate)


def test_the_dump_follows_each_task_down_to_the_await_that_holds_it():
    async def main() -> str:
        gate = asyncio.Event()
        task = asyncio.create_task(_actor(gate), name="actor")
        await asyncio.sleep(0)
        try:
            return dump_tasks()
        finally:
            gate.set()
            await task

    dump = asyncio.run(main())
    actor = dump.split("--- actor ", 1)[1].split("--- ", 1)[0]
    awaits = [line for line in actor.splitlines() if line.startswith("  awaits ")]
    assert [a.rsplit(" in ", 1)[1] for a in awaits][:3] == ["_actor", "_handler", "wait"]
