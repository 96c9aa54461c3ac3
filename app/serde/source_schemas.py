"""Can the service read every writer schema of its CDC sources? (``crm-erp-sync sources check``, the worker)

The subjects of a CDC topic belong to its producer (``owned_by = "producer"`` in the catalog): the
service never registers, versions or sets compatibility there. What it owes instead is a
consumer-side check: every version registered under ``<topic>-value`` (or the latest N) must be
readable into what the table's mapping needs (columns present, writer types convertible), and the
key must carry the row id. Versions are immutable, so a ``SourceChecker`` asks the registry only
for versions it has not judged yet; the worker runs one at start and every few seconds.

A subject with no version yet is not a failure: the producer has not written (Debezium registers
at its first record), and the first version is judged when it appears.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from app.catalog import TopicSpec
from app.cdc import salesforce
from app.cdc.columns import row_columns
from app.cdc.envelope import row_record
from app.cdc.mapping import mapping_for
from app.client_config import registry_config
from app.domain.errors import SyncError
from app.settings import Settings


@dataclass(frozen=True)
class VersionVerdict:
    """One registered version of a source subject, and what keeps the service from reading it."""

    subject: str
    version: int
    schema_id: int
    problems: tuple[str, ...]

    def __str__(self) -> str:
        head = f"{self.subject} v{self.version} (id {self.schema_id}): {'UNREADABLE' if self.problems else 'readable'}"
        return "\n".join([head, *(f"    {p}" for p in self.problems)])


@dataclass(frozen=True)
class SourceVerdict:
    """Every judged version of one source topic's value and key subjects."""

    topic: str
    table: str
    versions: tuple[VersionVerdict, ...]

    @property
    def unreadable(self) -> tuple[VersionVerdict, ...]:
        return tuple(v for v in self.versions if v.problems)

    def __str__(self) -> str:
        if not self.versions:
            return f"{self.topic}: no writer schema registered yet (the producer has not written); nothing to check"
        return "\n".join(str(v) for v in self.versions)


def judge_value(table: str, subject: str, version: int, schema_id: int, schema: dict) -> VersionVerdict:
    """Can the table's mapping read rows written with ``schema``?"""
    try:
        problems = mapping_for(table).reader(row_columns(row_record(schema))).problems
    except SyncError as exc:
        problems = (exc.detail,)
    return VersionVerdict(subject, version, schema_id, problems)


def judge_salesforce(entity: str, subject: str, version: int, schema_id: int, schema: dict) -> VersionVerdict:
    """Can the entity's Salesforce mapping read change events written with ``schema``? (The key is the
    connector's: the adapter reads record ids from the header.)"""
    mapping = salesforce.mappings().get(entity)
    if mapping is None:
        return VersionVerdict(subject, version, schema_id, (f"no Salesforce mapping for entity {entity!r}",))
    fields = {f["name"]: f for f in schema.get("fields", [])} if isinstance(schema, dict) else {}
    if salesforce.HEADER not in fields:
        return VersionVerdict(subject, version, schema_id, (f"no {salesforce.HEADER} field: not a change event",))
    header = salesforce.header_fields(schema)
    missing = [f for f in salesforce.HEADER_NEEDS if f not in header]
    problems = tuple(f"{salesforce.HEADER} has no {f!r}" for f in missing)
    columns, _ = salesforce.flatten_columns(schema)
    return VersionVerdict(subject, version, schema_id, problems + mapping.reader(columns).problems)


def judge_key(table: str, subject: str, version: int, schema_id: int, schema: dict) -> VersionVerdict:
    """Does the key carry the row id (what a delete without a before image is applied by)?"""
    id_column = mapping_for(table).id_column
    fields = {f["name"] for f in schema.get("fields", [])} if isinstance(schema, dict) else set()
    problems = () if id_column in fields else (f"key has no {id_column!r} field (the row id)",)
    return VersionVerdict(subject, version, schema_id, problems)


@dataclass
class SourceChecker:
    """Judges source subjects, asking the registry only for versions it has not judged yet."""

    settings: Settings
    latest: int | None = None  # judge only the latest N versions of each subject (None: all)
    _client: SchemaRegistryClient | None = None
    _judged: dict[tuple[str, int], VersionVerdict] = field(default_factory=dict)

    def _registry(self) -> SchemaRegistryClient:
        if self._client is None:
            self._client = SchemaRegistryClient(registry_config(self.settings, {"timeout": 10}))
        return self._client

    def _versions(self, subject: str) -> list[int]:
        try:
            versions = sorted(self._registry().get_versions(subject))
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                return []
            raise
        return versions[-self.latest :] if self.latest else versions

    def _subject(self, table: str, subject: str, judge) -> list[VersionVerdict]:
        out = []
        for version in self._versions(subject):
            verdict = self._judged.get((subject, version))
            if verdict is None:
                registered = self._registry().get_version(subject, version)
                schema = json.loads(registered.schema.schema_str)
                verdict = judge(table, subject, version, registered.schema_id, schema)
                self._judged[(subject, version)] = verdict
            out.append(verdict)
        return out

    def check(self, specs: Iterable[TopicSpec]) -> list[SourceVerdict]:
        """A verdict per producer-owned topic of ``specs``. Registry errors propagate."""
        verdicts = []
        for spec in specs:
            if spec.owned_by != "producer":
                continue
            topic = self.settings.topic(spec.name)
            if spec.domain == "salesforce-cdc":  # salesforce.<Entity>ChangeEvent
                entity = spec.name.rsplit(".", 1)[1].removesuffix("ChangeEvent")
                versions = self._subject(entity, f"{topic}-value", judge_salesforce)
                verdicts.append(SourceVerdict(topic, entity, tuple(versions)))
                continue
            table = spec.name.rsplit(".", 1)[1]
            versions = self._subject(table, f"{topic}-value", judge_value)
            versions += self._subject(table, f"{topic}-key", judge_key)
            verdicts.append(SourceVerdict(topic, table, tuple(versions)))
        return verdicts
