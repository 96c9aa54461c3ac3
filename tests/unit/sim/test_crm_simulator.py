"""The CRM simulator: reproducible, every kind of message in the share asked for, malformed messages
that the service's decoder really refuses, and expectations that match what the domain decides."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections import Counter
from itertools import pairwise

import pytest
from confluent_kafka.schema_registry.error import SchemaRegistryError

from app.contracts import default_index
from app.domain.errors import ReasonCode, SyncError
from app.serde.avro import AvroDecoder
from app.serde.registry import SchemaResolver
from app.sim import crm
from app.sim import debezium as dbz
from tests.support.service import Service

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
SCHEMA_IDS = {table: 100 + n for n, table in enumerate(dbz.TABLES)}
FAULTY = crm.CrmMix(reorder=0.6, duplicates=0.15, reopened=0.25, incomplete=0.15, edited=0.6, malformed=0.05,
                    deleted=0.6, concurrency=4)  # fmt: skip


Stream = tuple[list[crm.Planned], crm.CrmSummary]


def stream(seed: int = 7, count: int | None = 60, mix: crm.CrmMix | None = None) -> Stream:
    sim = crm.CrmSimulator(seed, mix, count)
    return list(sim.events()), sim.summary


def fingerprint(messages: list[crm.Planned]) -> list[tuple]:
    return [(m.seq, m.table, m.key, m.kind, m.defect, m.reordered, crm.wire_value(m, 1)) for m in messages]


def close_to(observed: float, share: float, n: int, sigmas: float = 4.0) -> bool:
    return abs(observed - share) <= sigmas * math.sqrt(share * (1 - share) / n) + 0.005


# --- reproducibility ---------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_bytes_and_another_seed_does_not():
    first, summary = stream(seed=11)
    again, summary_again = stream(seed=11)
    assert fingerprint(first) == fingerprint(again)
    assert summary.to_json() == summary_again.to_json()
    other, _ = stream(seed=12)
    assert fingerprint(other) != fingerprint(first)


def test_stop_lets_the_deals_in_flight_finish_and_starts_no_new_one():
    sim = crm.CrmSimulator(3, crm.CrmMix(concurrency=5), count=None)
    messages = []
    for m in sim.events():
        messages.append(m)
        if len(messages) == 400:
            sim.stop()
            started = sim.summary.started
    assert sim.summary.started == started >= 5
    assert len(sim.summary.deals) == started  # every deal started was played to its end
    assert {m.deal for m in messages if m.deal} == {d.id for d in sim.summary.deals}


# --- the mix ------------------------------------------------------------------------------------


def test_every_kind_appears_in_about_the_share_asked_for():
    mix = crm.CrmMix()
    messages, summary = stream(seed=5, count=500, mix=mix)
    deals = summary.deals
    n = len(deals)
    scenarios = Counter(d.scenario for d in deals)
    assert close_to(scenarios[crm.Scenario.LOST] / n, mix.lost, n)
    reopened = scenarios[crm.Scenario.REOPENED_WON] + scenarios[crm.Scenario.REOPENED_LOST]
    assert close_to(reopened / n, mix.reopened, n)
    assert close_to(scenarios[crm.Scenario.INCOMPLETE] / n, mix.incomplete, n)
    assert {d.incomplete_reason for d in deals} == {None, *crm.Incomplete}
    won = [d for d in deals if d.scenario is crm.Scenario.WON]
    assert close_to(sum(d.edit is not None for d in won) / len(won), mix.edited, len(won))
    lost = [d for d in deals if d.scenario is crm.Scenario.LOST]
    assert close_to(sum(d.deleted for d in lost) / len(lost), mix.deleted, len(lost))
    assert close_to(summary.reordered_pairs / n, mix.reorder, n, sigmas=5)
    assert {d.currency for d in deals} == set(crm.FX)

    total = len(messages)
    kinds = Counter(m.kind for m in messages)
    assert set(kinds) == set(crm.Kind)
    assert close_to(kinds[crm.Kind.DUPLICATE] / total, mix.duplicates, total)
    assert close_to(kinds[crm.Kind.MALFORMED] / total, mix.malformed, total)
    assert {m.defect for m in messages if m.kind is crm.Kind.MALFORMED} == set(crm.Defect)
    assert {m.table for m in messages} == set(dbz.TABLES)
    assert summary.totals()["messages"] == total
    assert summary.totals()["by_kind"] == {str(k): v for k, v in sorted(kinds.items())}


def test_the_stream_opens_with_a_snapshot_of_the_reference_data_and_re_reads_it_in_bursts():
    messages, _ = stream(seed=2, count=80, mix=crm.CrmMix(snapshot_every=100, snapshot_size=10, duplicates=0))
    first_deal = next(i for i, m in enumerate(messages) if m.deal)
    initial = [m for m in messages[:first_deal] if m.kind is not crm.Kind.MALFORMED]
    assert {m.table for m in initial} == set(crm.REFERENCE_TABLES)
    assert all(m.value["op"] == "r" for m in initial)
    assert [m.value["source"]["snapshot"] for m in initial][-1] == "last"
    assert {m.value["source"]["snapshot"] for m in initial[:-1]} == {"true"}
    later = [m for m in messages[first_deal:] if m.kind is crm.Kind.SNAPSHOT]
    assert len(later) >= 20 and sum(m.value["source"]["snapshot"] == "last" for m in later) >= 2


def test_deals_move_through_the_stages_and_deletes_are_followed_by_their_tombstone():
    messages, summary = stream(seed=4, count=120, mix=FAULTY)
    stages = {}
    for m in messages:
        if m.table == "opportunity" and m.kind is crm.Kind.CHANGE:
            stages.setdefault(m.key, []).append((m.value["source"]["lsn"], m.value["after"]["stage_name"]))
    for deal in summary.deals:
        path = [s for _, s in sorted(stages[deal.id])]
        assert path[0] == "Prospecting" and path[-1] == deal.final_stage
        if deal.scenario in (crm.Scenario.REOPENED_WON, crm.Scenario.REOPENED_LOST):
            i = path.index(crm.WON)
            assert crm.WON not in path[i + 1 : i + 2] or path.count(crm.WON) > 1
            assert "Negotiation/Review" in path[i:]
    real = [m for m in messages if m.kind not in (crm.Kind.DUPLICATE, crm.Kind.MALFORMED)]
    deletes = 0
    for m, nxt in pairwise(real):
        if m.kind is crm.Kind.DELETE:
            deletes += 1
            assert (nxt.kind, nxt.table, nxt.key, nxt.value) == (crm.Kind.TOMBSTONE, m.table, m.key, None)
    assert deletes >= 10


def test_a_reordered_message_arrives_just_before_the_change_committed_ahead_of_it():
    messages, summary = stream(seed=6, count=100, mix=FAULTY)
    real = [m for m in messages if m.kind not in (crm.Kind.DUPLICATE, crm.Kind.MALFORMED)]
    reordered = [(m, nxt) for m, nxt in pairwise(real) if m.reordered]
    assert len(reordered) == summary.reordered_pairs >= 30
    for m, nxt in reordered:
        assert m.deal == nxt.deal
        assert m.value["source"]["lsn"] > nxt.value["source"]["lsn"]
    lsns = [m.value["source"]["lsn"] for m in real if m.value is not None and not m.reordered]
    assert sum(a > b for a, b in pairwise(lsns)) <= summary.reordered_pairs  # otherwise in commit order


def test_a_duplicate_repeats_a_message_sent_shortly_before_byte_for_byte():
    messages, _ = stream(seed=8, count=60, mix=FAULTY)
    for i, m in enumerate(messages):
        if m.kind is crm.Kind.DUPLICATE:
            earlier = [p for p in messages[max(0, i - 12) : i] if p.kind is not crm.Kind.DUPLICATE]
            assert any(p.key == m.key and crm.wire_value(p, 1) == crm.wire_value(m, 1) for p in earlier)


# --- on the wire ----------------------------------------------------------------------------


class FakeRegistry:
    """What the resolver asks the registry: the Envelope contract of each table under its id, 404 otherwise."""

    class _Schema:
        def __init__(self, text: str) -> None:
            self.schema_str = text

    async def get_schema(self, schema_id: int):
        import json

        for table, sid in SCHEMA_IDS.items():
            if sid == schema_id:
                return self._Schema(json.dumps(default_index().expanded(crm.value_contract(table))))
        raise SchemaRegistryError(404, 40403, f"Schema {schema_id} not found")


def decode(raw: bytes) -> object:
    return asyncio.run(AvroDecoder(SchemaResolver(FakeRegistry())).decode(raw)).value


EXPECTED_REASON = {
    crm.Defect.TRUNCATED: ReasonCode.AVRO_DECODE_ERROR,
    crm.Defect.BAD_MAGIC: ReasonCode.BAD_MAGIC_BYTE,
    crm.Defect.UNKNOWN_SCHEMA: ReasonCode.UNKNOWN_SCHEMA_ID,
}


def test_malformed_messages_are_refused_by_the_services_decoder_with_the_expected_reason():
    messages, _ = stream(seed=9, count=150, mix=crm.CrmMix(malformed=0.2))
    malformed = [m for m in messages if m.kind is crm.Kind.MALFORMED]
    assert {m.defect for m in malformed} == set(crm.Defect)
    for m in malformed:
        raw = crm.wire_value(m, SCHEMA_IDS[m.table])
        with pytest.raises(SyncError) as caught:
            decode(raw)
        assert caught.value.reason is EXPECTED_REASON[m.defect], (m.defect, caught.value)
        if m.defect is crm.Defect.TRUNCATED:
            whole = crm.wire_value(crm.Planned(0, m.table, m.key, m.value, crm.Kind.CHANGE), SCHEMA_IDS[m.table])
            assert whole.startswith(raw) and len(raw) < len(whole)


def test_every_other_message_decodes_back_to_what_was_planned():
    messages, _ = stream(seed=10, count=40)
    for m in messages:
        if m.kind is crm.Kind.MALFORMED:
            continue
        raw = crm.wire_value(m, SCHEMA_IDS[m.table])
        if m.value is None:
            assert raw is None and m.kind in (crm.Kind.TOMBSTONE, crm.Kind.DUPLICATE)
            continue
        value = decode(raw)
        assert value["op"] == m.value["op"] and value["source"]["lsn"] == m.value["source"]["lsn"]
        assert value["after"] == m.value["after"] and value["before"] == m.value["before"]
        assert crm.wire_key(m, 1)[5:] == crm.avro_body({"id": m.key}, crm._parsed(crm.key_contract(m.table)))


# --- what the service should make of it --------------------------------------------------


@pytest.mark.parametrize("seed,mix", [(1, None), (2, FAULTY), (3, FAULTY)], ids=["default", "faulty-2", "faulty-3"])
def test_the_expected_commands_are_what_the_domain_decides(seed, mix):
    """Fed through normalise + decide in arrival order, every finished deal gets exactly the distinct
    create / cancel / amend command ids the summary expects, and a live order only where expected."""
    messages, summary = stream(seed=seed, count=150, mix=mix)
    service = Service()
    for m in messages:
        service.crm(m, NOW)
    for deal in summary.deals:
        state = service.state(deal.id)
        got = (
            len(service.command_ids(deal.id, "CreateSalesOrder")),
            len(service.command_ids(deal.id, "CancelSalesOrder")),
            len(service.command_ids(deal.id, "AmendSalesOrder")),
            state is not None and state.order is not None,
        )
        assert got == (deal.creates, deal.cancels, deal.amends, deal.expects_order), deal
        if deal.incomplete_reason is not None:
            assert service.exceptions(deal.id), deal
    expected = summary.totals()["expected"]
    assert expected["orders"] == sum(d.expects_order for d in summary.deals) > 0
    creates = {
        c["envelope"]["command_id"] for c in service.commands() if c["command"]["-type"].endswith("CreateSalesOrder")
    }
    assert len(creates) == expected["create_command_ids"]


def test_ended_terms_are_asked_to_renew_once_and_only_the_unrenewed_stay_missing():
    """Deals on a one-month term that ended before the run: one renewal request per contract, and a
    RENEWAL_MISSING alert left open exactly where the CRM did not open the renewal."""
    messages, summary = stream(seed=4, count=120, mix=crm.CrmMix(ended_terms=0.4))
    service = Service()
    now = dt.datetime.now(dt.UTC)  # the terms ended ten days before today
    for m in messages:
        service.crm(m, now)
    expected = summary.totals()["expected"]
    requests = {r["envelope"]["command_id"] for r in service.records("crm.commands.renewal")}
    assert len(requests) == expected["renewals_due"] > 0
    still_open: dict[str, str] = {}
    for a in service.alerts():
        if a["kind"] == "RENEWAL_MISSING":
            still_open[a["alert_id"]] = a["state"]
    missing = {i.split(":", 1)[0] for i, state in still_open.items() if state == "OPEN"}
    ended = {d.id for d in summary.deals if d.term_ended and d.expects_order and not d.renewed}
    assert missing == ended and len(ended) == expected["renewals_missing"] > 0
    assert any(d.renewed for d in summary.deals)


def test_the_summary_renders_and_serialises():
    import json

    _, summary = stream(seed=1, count=30)
    text = summary.render()
    for word in ("messages sent", "closed won", "expected", "live orders", "malformed", "reordered"):
        assert word in text
    data = json.loads(json.dumps(summary.to_json()))
    assert len(data["per_deal"]) == 30 and data["seed"] == 1
    assert data["expected"]["orders"] == sum(d["expects_order"] for d in data["per_deal"])


def test_a_duplicate_owed_at_the_end_is_still_sent_as_a_duplicate():
    messages, summary = stream(seed=3, count=5, mix=crm.CrmMix(duplicates=1.0, malformed=0.0, concurrency=2))
    kinds = Counter(m.kind for m in messages)
    originals = len(messages) - kinds[crm.Kind.DUPLICATE]
    assert kinds[crm.Kind.DUPLICATE] == originals  # every message sent twice, the last ones included
    assert summary.messages == kinds
