"""Turning domain outputs into wire-format messages: validated against the contract, then encoded.

Encoding needs registry ids, which may need the network: ``prepare`` does all of it *before* the
caller writes any state, so a registry outage leaves nothing half-done and the retry is clean.
At start the worker resolves the id of every contract it writes (``warm_encoders``), so that an
outage later holds up only messages whose writer schema the worker has not seen yet, never the
first exception, alert or escalation of its kind.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import orjson
from faust.types import TopicT

from app.catalog import default_catalog
from app.contracts.models import model
from app.domain.outputs import JSON, Output
from app.engine.app import app, settings
from app.engine.runtime import runtime

log = logging.getLogger(__name__)

SOURCE_DOMAINS = ("crm-cdc", "erp-events")  # topics the CRM's CDC and the ERP write; the worker only reads them
_topics: dict[str, TopicT] = {}


def topic(name: str) -> TopicT:
    """The Faust topic of catalog topic ``name`` (raw bytes in and out)."""
    if name not in _topics:
        _topics[name] = app.topic(settings.topic(name), key_serializer="raw", value_serializer="raw")
    return _topics[name]


def raw_topic(full_name: str) -> TopicT:
    """A topic by its full name as found in a message header (retries and replays return there)."""
    key = f"full:{full_name}"
    if key not in _topics:
        _topics[key] = app.topic(full_name, key_serializer="raw", value_serializer="raw")
    return _topics[key]


@dataclass(frozen=True, slots=True)
class Ready:
    topic: TopicT
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def _headers(out: Output) -> list[tuple[str, bytes]]:
    return [(k, v.encode()) for k, v in out.headers]


def _subject_topic(out: Output, target: TopicT) -> str:
    """Whose ``<topic>-value`` subject the value is encoded under: a command sent through a retry tier
    goes back to its own topic, so it carries that topic's schema id (tiers have no contract)."""
    back_to = dict(out.headers).get("x-retry-target-catalog")
    return settings.topic(back_to) if back_to else target.get_topic_name()


async def prepare(outputs: list[Output]) -> list[Ready]:
    ready = []
    for out in outputs:
        target = topic(out.topic)
        if out.contract == JSON:
            ready.append(Ready(target, out.key.encode(), orjson.dumps(out.value), _headers(out)))
            continue
        encoder = await runtime.encoder(_subject_topic(out, target), out.contract)
        record = model(out.contract).model_validate(out.value)
        ready.append(Ready(target, out.key.encode(), encoder.encode(record.to_avro()), _headers(out)))
    return ready


async def send(ready: list[Ready]) -> None:
    for r in ready:
        await app.producer.produce(r.topic.get_topic_name(), r.key, r.value, r.headers or None)


async def publish(name: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]] | None = None) -> None:
    """Send to catalog topic ``name`` by the producer's direct path (app/engine/producer.py)."""
    await app.producer.produce(settings.topic(name), key, value, headers)


def written() -> list[tuple[str, str]]:
    """(topic, value contract) of each catalog topic with a contract that is not a source."""
    return [
        (settings.topic(s.name), s.value_contract)
        for s in default_catalog()
        if s.value_contract and s.domain not in SOURCE_DOMAINS
    ]


@app.task
async def warm_encoders() -> list[str]:
    """Resolve the encoder of every contract the worker writes; a failure is left to the first use.
    Returns what could not be resolved."""
    missed = []
    for topic_name, contract in written():
        try:
            await runtime.encoder(topic_name, contract)
        except Exception as exc:
            missed.append(f"{topic_name} ({exc})")
    if missed:
        log.warning("output encoders not resolved at start, each resolves on first use: %s", "; ".join(missed))
    return missed
