"""``crm-erp-sync schemas register``: every catalog contract under its subject, compatibility set first.

TopicNameStrategy: ``<topic>-value`` and ``<topic>-key``. The compatibility level is set before
registering because Apicurio enforces nothing on a subject without one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from app.catalog import TopicSpec
from app.contracts import ContractIndex
from app.settings import Settings


def subjects(s: Settings, specs, index: ContractIndex) -> Iterator[tuple[str, str, str]]:
    """(subject, contract full name, compatibility) for every contract the catalog names."""
    for spec in specs:
        spec: TopicSpec
        topic = s.topic(spec.name)
        if spec.value_contract:
            yield f"{topic}-value", spec.value_contract, spec.compatibility
        if spec.key_contract:
            yield f"{topic}-key", spec.key_contract, spec.compatibility


def client(s: Settings) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": s.registry_url})


def register(s: Settings, specs, index: ContractIndex, say=print) -> list[str]:
    """Register what is not registered yet; returns the subjects that changed."""
    reg = client(s)
    changed: list[str] = []
    for subject, contract, level in subjects(s, specs, index):
        schema = Schema(json.dumps(index.expanded(contract)), "AVRO")
        if _compatibility(reg, subject) != level:
            reg.set_compatibility(subject, level)
        try:
            current = reg.lookup_schema(subject, schema).schema_id
        except Exception:
            current = None
        if current is None:
            schema_id = reg.register_schema(subject, schema)
            say(f"{subject}: registered {contract} as id {schema_id} ({level})")
            changed.append(subject)
    return changed


def _compatibility(reg: SchemaRegistryClient, subject: str) -> str | None:
    try:
        return reg.get_compatibility(subject)
    except Exception:
        return None
