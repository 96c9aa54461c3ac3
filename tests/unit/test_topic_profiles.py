"""Environment profiles: the catalog as each environment creates it (topics/profiles.toml)."""

from __future__ import annotations

import pytest

from app.catalog import Profile, default_catalog, load_profiles, profile


def test_the_shipped_profiles_are_local_and_production():
    profiles = load_profiles()
    assert (profiles["local"].replication, profiles["local"].min_insync_replicas, profiles["local"].partitions) == (
        1,
        1,
        4,
    )
    prod = profiles["production"]
    assert (prod.replication, prod.min_insync_replicas, prod.partitions) == (3, 2, 12)


def test_a_profile_sets_every_topic_it_creates_producer_owned_ones_included():
    """A producer-owned topic takes the profile when `topics apply` stands in for the producer and creates
    it: on a three-broker cluster it would otherwise be the one topic with a single replica."""
    catalog = default_catalog()
    applied = {s.name: s for s in profile("production").applied(catalog)}
    assert any(spec.owned_by == "producer" for spec in catalog)
    for spec in catalog:
        got = applied[spec.name]
        partitions = spec.partitions if spec.partitions_fixed else 12
        assert (got.partitions, got.replication, got.config["min.insync.replicas"]) == (partitions, 3, "2"), spec.name
        assert got.broker_config()["min.insync.replicas"] == "2"
    assert applied["sync.audit"].retention_ms == 31536000000  # its own override
    assert (
        applied["sync.exceptions"].retention_ms == next(s for s in catalog if s.name == "sync.exceptions").retention_ms
    )


def test_the_local_profile_is_the_catalog_as_it_was():
    catalog = default_catalog()
    applied = profile("local").applied(catalog)
    for before, after in zip(catalog, applied, strict=True):
        assert (after.partitions, after.replication) == (before.partitions, before.replication)


def test_bad_profiles_are_refused_with_their_reason():
    with pytest.raises(ValueError, match="min_insync_replicas exceeds replication"):
        Profile(name="x", replication=1, min_insync_replicas=2, partitions=4)
    with pytest.raises(ValueError, match="not in the catalog"):
        Profile(name="x", replication=1, min_insync_replicas=1, partitions=4, topic={"no.such": {}}).applied(
            default_catalog()
        )
    with pytest.raises(ValueError, match="no topic profile 'staging'"):
        profile("staging")
