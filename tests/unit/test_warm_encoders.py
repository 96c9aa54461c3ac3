"""The worker resolves its output encoders at start (app/engine/outputs.py ``warm_encoders``)."""

from __future__ import annotations

import asyncio

import pytest

from app.domain.errors import ReasonCode, SyncError, TransientError
from app.domain.outputs import ParityFact
from app.engine.app import build_app
from app.engine.outputs import Outputs
from app.engine.runtime import Runtime
from app.settings import get_settings

settings = get_settings()


class Resolver:
    """Gives an id for each subject, except those asked to fail (as an unreachable registry would)."""

    def __init__(self, failing: set[str]) -> None:
        self.failing, self.asked = failing, []

    async def id_for(self, subject: str, schema: dict) -> int:
        self.asked.append(subject)
        if subject in self.failing:
            raise TransientError(ReasonCode.REGISTRY_UNAVAILABLE, f"{subject}: connection refused")
        return len(self.asked)


def _outputs(failing: set[str] = frozenset()) -> tuple[Outputs, Resolver]:
    runtime, resolver = Runtime(settings), Resolver(set(failing))
    runtime.resolver = resolver
    return Outputs(build_app(settings), runtime), resolver


def _warm(failing: set[str]) -> tuple[Runtime, Resolver, list[str], Outputs]:
    outputs, resolver = _outputs(failing)
    return outputs.runtime, resolver, asyncio.run(outputs.warm_encoders()), outputs


def test_every_contract_the_worker_writes_is_resolved_and_no_source_is() -> None:
    runtime, resolver, missed, outputs = _warm(set())
    names = {settings.topic(n) for n in ("erp.commands.sales-order", "sync.exceptions", "sync.escalations")}
    assert not missed
    assert names <= set(runtime._encoders)
    assert set(resolver.asked) == {f"{topic}-value" for topic, _ in outputs.written()}
    assert not any(".public." in s or "erp.events" in s for s in resolver.asked)  # CRM CDC and ERP events


def test_a_subject_that_cannot_be_resolved_is_reported_and_left_to_its_first_use() -> None:
    audit = settings.topic("sync.audit")
    runtime, _, missed, _ = _warm({f"{audit}-value"})
    assert len(missed) == 1 and missed[0].startswith(audit)
    assert audit not in runtime._encoders and settings.topic("sync.exceptions") in runtime._encoders


def test_an_output_the_broker_would_refuse_is_an_error_before_any_state_is_written():
    """A send refused after the state write left state saying the output went out: the input was
    quarantined and the output lost (a replay is then a duplicate). prepare() refuses it first."""
    outputs, _ = _outputs()
    huge = ParityFact("EUR", {"opp": "x" * (outputs.limit + 1)})
    with pytest.raises(SyncError) as refused:
        asyncio.run(outputs.prepare([huge]))
    assert refused.value.reason == ReasonCode.MESSAGE_TOO_LARGE
    [fits] = asyncio.run(outputs.prepare([ParityFact("EUR", {"opp": "x" * 1000})]))
    assert fits.topic.endswith("sync.parity-facts")
