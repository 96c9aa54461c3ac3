"""Schema governance against the registry: ``schemas register`` and ``schemas check``.

TopicNameStrategy: ``<topic>-value`` and ``<topic>-key``. The compatibility level is set before
registering because Apicurio enforces nothing on a subject without one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import httpx
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from app.catalog import TopicSpec
from app.client_config import registry_config, registry_http
from app.contracts import ContractIndex, compat
from app.settings import Settings


def subjects(s: Settings, specs: Iterable[TopicSpec]) -> Iterator[tuple[str, str, str]]:
    """(subject, contract full name, compatibility) for every contract the catalog names."""
    for spec in specs:
        topic = s.topic(spec.name)
        if spec.value_contract:
            yield f"{topic}-value", spec.value_contract, spec.compatibility
        if spec.key_contract:
            yield f"{topic}-key", spec.key_contract, spec.compatibility


def client(s: Settings) -> SchemaRegistryClient:
    return SchemaRegistryClient(registry_config(s, {"timeout": 30}))


def _compatibility(reg: SchemaRegistryClient, subject: str) -> str | None:
    try:
        return reg.get_compatibility(subject)
    except SchemaRegistryError:
        return None


def _registered_id(reg: SchemaRegistryClient, subject: str, schema: Schema) -> int | None:
    try:
        return reg.lookup_schema(subject, schema).schema_id
    except SchemaRegistryError as exc:
        if exc.http_status_code == 404:
            return None
        raise


def register(s: Settings, specs: Iterable[TopicSpec], index: ContractIndex, say=print) -> list[str]:
    """Register what is not registered yet; returns the subjects that changed (empty: a no-op)."""
    reg = client(s)
    changed: list[str] = []
    for subject, contract, level in subjects(s, specs):
        schema = Schema(json.dumps(index.expanded(contract)), "AVRO")
        if _compatibility(reg, subject) != level:
            reg.set_compatibility(subject, level)
            say(f"{subject}: compatibility {level}")
            changed.append(subject)
        if _registered_id(reg, subject, schema) is None:
            schema_id = reg.register_schema(subject, schema)
            say(f"{subject}: registered {contract} as id {schema_id}")
            changed.append(subject)
    return sorted(set(changed))


@dataclass(frozen=True)
class SubjectCheck:
    subject: str
    contract: str
    level: str
    compatible: bool
    reasons: tuple[str, ...]

    def __str__(self) -> str:
        head = f"{self.subject:<48} {self.level:<20} {'compatible' if self.compatible else 'INCOMPATIBLE'}"
        return "\n".join([head, *(f"    {r}" for r in self.reasons)])


def check(s: Settings, specs: Iterable[TopicSpec], index: ContractIndex) -> list[SubjectCheck]:
    """Each local contract against its subject's latest version, by the registry's own rules."""
    reg = client(s)
    results: list[SubjectCheck] = []
    for subject, contract, level in subjects(s, specs):
        body = {"schema": json.dumps(index.expanded(contract)), "schemaType": "AVRO"}
        reasons: list[str] = []
        have = _compatibility(reg, subject)
        if have != level:
            reasons.append(f"subject compatibility is {have}, the catalog says {level}")
        resp = httpx.post(
            f"{s.registry_url}/compatibility/subjects/{subject}/versions/latest",
            params={"verbose": "true"},
            json=body,
            headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
            timeout=30,
            **registry_http(s),
        )
        if resp.status_code == 404:
            results.append(SubjectCheck(subject, contract, level, False, ("not registered",)))
            continue
        resp.raise_for_status()
        verdict = resp.json()
        ok = bool(verdict.get("is_compatible"))
        reasons += [str(m) for m in verdict.get("messages", []) or []]
        if not ok:  # Apicurio gives no reasons: explain with the offline rules against the latest version
            latest = json.loads(reg.get_latest_version(subject).schema.schema_str)
            reasons += [str(p) for p in compat.check(latest, json.loads(body["schema"]), level)]
        results.append(SubjectCheck(subject, contract, level, ok and have == level, tuple(reasons)))
    return results
