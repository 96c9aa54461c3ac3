"""The consumer-side check of CDC writer schemas, judged offline (the registry round trip is in
tests/integration/test_source_schemas.py)."""

from __future__ import annotations

import pytest

from app.catalog import TopicSpec
from app.serde.source_schemas import judge_key, judge_value
from tests.fixtures.debezium import load


@pytest.mark.parametrize("rec", load("crm"), ids=lambda r: r.table)
def test_every_table_debezium_wrote_from_the_local_crm_is_readable(rec):
    assert judge_value(rec.table, f"{rec.topic}-value", 1, rec.schema_id, rec.schema).problems == ()


def test_a_key_without_the_row_id_is_a_problem():
    verdict = judge_key("opportunity", "s-key", 3, 9, {"type": "record", "name": "Key", "fields": []})
    assert verdict.problems == ("key has no 'id' field (the row id)",)
    assert str(verdict) == "s-key v3 (id 9): UNREADABLE\n    key has no 'id' field (the row id)"


def test_a_value_that_is_no_cdc_row_is_a_problem_not_a_crash():
    envelope = {"type": "record", "name": "E", "fields": [
        {"name": "op", "type": "string"}, {"name": "source", "type": "string"}, {"name": "after", "type": "string"},
    ]}  # fmt: skip
    [problem] = judge_value("opportunity", "s-value", 1, 5, envelope).problems
    assert "'after' is not a row record" in problem


def test_a_producer_owned_topic_names_no_contract():
    with pytest.raises(ValueError, match="the producer owns its subjects"):
        TopicSpec(
            name="crm.public.x", description="x", partitions=1, replication=1, cleanup_policy="delete",
            key="id", classification="internal", owned_by="producer", value_contract="crm.public.x.Envelope",
        )  # fmt: skip
