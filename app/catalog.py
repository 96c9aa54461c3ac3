"""The topic catalog in ``topics/``: one TOML file per domain, validated into typed entries.

Names in the catalog are the public names; ``Settings.topic_prefix`` is prepended at run time so
tests (and tenants sharing a cluster) get their own topics and subjects.
"""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.settings import REPO_ROOT

TOPICS_DIR = REPO_ROOT / "topics"
PROFILES = TOPICS_DIR / "profiles.toml"
Compatibility = Literal[
    "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE", "NONE"
]


class TopicSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    description: str
    partitions: int = Field(gt=0)
    partitions_fixed: bool = Field(False, description="the partition count is part of the design: profiles keep it")
    replication: int = Field(gt=0)
    cleanup_policy: Literal["delete", "compact", "compact,delete"]
    retention_ms: int | None = None
    key: str = Field(description="what the message key is: all topics of one lifecycle share one key")
    key_contract: str | None = None
    value_contract: str | None = None
    compatibility: Compatibility = "BACKWARD_TRANSITIVE"
    classification: Literal["public", "internal", "confidential", "restricted"]
    personal_data: tuple[str, ...] = ()
    config: dict[str, str] = Field(default_factory=dict)
    domain: str = ""
    owner: str = ""
    owned_by: Literal["service", "producer"] = Field(
        "service",
        description="who owns the topic's configuration and subjects: the service, or the producer that writes it "
        "(the service then only creates it where missing, and never registers or levels its subjects)",
    )

    @model_validator(mode="after")
    def _producer_subjects_name_no_contract(self) -> TopicSpec:
        if self.owned_by == "producer" and (self.key_contract or self.value_contract):
            raise ValueError(f"{self.name}: the producer owns its subjects; the catalog names no contract for them")
        return self

    def broker_config(self) -> dict[str, str]:
        """The topic-level configs the catalog pins (others stay at broker defaults)."""
        wanted = {"cleanup.policy": self.cleanup_policy, **self.config}
        if self.retention_ms is not None:
            wanted["retention.ms"] = str(self.retention_ms)
        return wanted


class TopicOverride(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    partitions: int | None = Field(None, gt=0)
    replication: int | None = Field(None, gt=0)
    retention_ms: int | None = None


class Profile(BaseModel):
    """An environment's replication, min.insync.replicas and partitions (topics/profiles.toml)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    replication: int = Field(gt=0)
    min_insync_replicas: int = Field(gt=0)
    partitions: int = Field(gt=0)
    topic: dict[str, TopicOverride] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _isr_fits(self) -> Profile:
        if self.min_insync_replicas > self.replication:
            raise ValueError(f"profile {self.name}: min_insync_replicas exceeds replication")
        return self

    def applied(self, specs: tuple[TopicSpec, ...] | list[TopicSpec]) -> tuple[TopicSpec, ...]:
        """The catalog as this environment creates it: topics take the profile's partitions,
        replication and min.insync.replicas (and their own overrides). For a producer-owned topic these
        only matter when ``topics apply`` creates a missing one (a local or test setup standing in for
        the producer); an existing one is left as the producer has it."""
        unknown = set(self.topic) - {s.name for s in specs}
        if unknown:
            raise ValueError(f"profile {self.name}: overrides for topics not in the catalog: {sorted(unknown)}")
        out = []
        for spec in specs:
            o = self.topic.get(spec.name) or TopicOverride(partitions=None, replication=None)
            replication = o.replication or self.replication
            out.append(
                spec.model_copy(
                    update={
                        "partitions": spec.partitions if spec.partitions_fixed else (o.partitions or self.partitions),
                        "replication": replication,
                        "retention_ms": o.retention_ms if o.retention_ms is not None else spec.retention_ms,
                        "config": {
                            **spec.config,
                            "min.insync.replicas": str(min(self.min_insync_replicas, replication)),
                        },
                    }
                )
            )
        return tuple(out)


def load_profiles(path: Path = PROFILES) -> dict[str, Profile]:
    data = tomllib.loads(path.read_text())
    return {name: Profile(name=name, **body) for name, body in data.items()}


def profile(name: str, path: Path = PROFILES) -> Profile:
    profiles = load_profiles(path)
    if name not in profiles:
        raise ValueError(f"no topic profile {name!r} in {path} (there are: {', '.join(sorted(profiles))})")
    return profiles[name]


def load(directory: Path = TOPICS_DIR) -> list[TopicSpec]:
    specs: list[TopicSpec] = []
    for path in sorted(p for p in directory.glob("*.toml") if p != directory / PROFILES.name):
        doc = tomllib.loads(path.read_text())
        for entry in doc.get("topic", []):
            specs.append(
                TopicSpec(domain=doc["domain"], owner=doc["owner"], owned_by=doc.get("owned_by", "service"), **entry)
            )
    names = [s.name for s in specs]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ValueError(f"topics declared twice in {directory}: {sorted(dupes)}")
    return specs


@lru_cache(maxsize=1)
def default_catalog() -> tuple[TopicSpec, ...]:
    return tuple(load())


def spec(name: str) -> TopicSpec:
    for s in default_catalog():
        if s.name == name:
            return s
    raise KeyError(f"{name} is not in the topic catalog")


def internal_partitions(topic_partitions: int | None, profile_name: str) -> int:
    """Partitions of the worker's tables and internal topics: the setting, else the profile's."""
    return topic_partitions or profile(profile_name).partitions
