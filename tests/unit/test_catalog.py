"""The topic catalog loads, names real contracts, and keeps lifecycle topics co-partitioned."""

from __future__ import annotations

from app.catalog import default_catalog
from app.contracts import default_index


def test_every_contract_the_catalog_names_exists():
    index = default_index()
    for spec in default_catalog():
        for contract in (spec.key_contract, spec.value_contract):
            if contract:
                assert contract in index.raw, f"{spec.name} names unknown contract {contract}"


def test_lifecycle_topics_share_one_partition_count():
    keyed = [s for s in default_catalog() if s.key.startswith("correlation key")]
    assert len(keyed) >= 3
    assert len({s.partitions for s in keyed}) == 1


def test_commands_and_events_other_teams_consume_are_full_transitive():
    for spec in default_catalog():
        if spec.name.startswith(("erp.", "crm.commands")):
            assert spec.compatibility == "FULL_TRANSITIVE", spec.name


def test_topics_holding_personal_data_are_not_public_or_internal():
    for spec in default_catalog():
        if spec.personal_data:
            assert spec.classification in ("confidential", "restricted"), spec.name
