"""The missing-topics check behind ``crm_erp_sync_missing_topics``, ``/ready`` and its log line."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import pytest

from app.catalog import default_catalog
from app.observe import metrics, topic_presence
from app.settings import get_settings


class Admin:
    """Answers ``list_topics`` with the topics it is given, or fails as an unreachable broker does."""

    def __init__(self, topics: set[str]) -> None:
        self.topics, self.down = topics, False

    def list_topics(self, timeout: float) -> SimpleNamespace:
        if self.down:
            raise RuntimeError("KafkaError{code=_TRANSPORT}")
        return SimpleNamespace(topics=dict.fromkeys(self.topics))


@pytest.fixture
def admin(monkeypatch) -> Admin:
    s = get_settings()
    broker = Admin({s.topic(t.name) for t in default_catalog()})
    monkeypatch.setattr(topic_presence, "_state", {"admin": broker})
    monkeypatch.setattr(topic_presence.verdict, "answer", [])
    monkeypatch.setattr(topic_presence.verdict, "checked", 0.0)
    return broker


def check() -> list[str]:
    return asyncio.run(topic_presence.missing_topics(max_age_s=0))


def test_topics_missing_are_named_logged_once_counted_and_cleared_when_created(admin, caplog) -> None:
    s = get_settings()
    assert check() == [] and metrics.missing_topics._value.get() == 0
    gone = sorted(s.topic(n) for n in ("sync.escalations", "sync.audit"))
    admin.topics -= set(gone)
    with caplog.at_level(logging.INFO, logger=topic_presence.__name__):
        assert check() == gone and check() == gone
        assert metrics.missing_topics._value.get() == 2
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1 and all(t in errors[0] for t in gone) and "topics apply" in errors[0]
        admin.topics |= set(gone)
        assert check() == [] and metrics.missing_topics._value.get() == 0
        assert "every catalog topic exists on the broker now" in caplog.text


def test_a_broker_that_cannot_be_asked_leaves_the_last_answer(admin) -> None:
    gone = get_settings().topic("sync.audit")
    admin.topics.discard(gone)
    assert check() == [gone]
    admin.down = True
    assert check() == [gone]


def test_answers_are_reused_for_a_while(admin) -> None:
    assert check() == []
    admin.topics.clear()
    assert asyncio.run(topic_presence.missing_topics(max_age_s=60)) == []
