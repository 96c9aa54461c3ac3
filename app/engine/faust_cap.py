"""The Faust cap, the benchmark's (f): what faust-streaming itself allows for this service's shape.

A stock ``faust.App`` (aiokafka producer and consumer, RocksDB tables, Faust's default sensors)
with the service's topology and the service's per-event work (app/engine/bench_work.py) and
nothing else: one agent over the CDC topics applies reference rows in-process and re-keys deal
rows by opportunity through a topic; a keyed agent with a table decides each deal and sends
the encoded outputs. No guard, outbox, parity, ledger, timers or web pages. The keyed agent
waits until the reference rows the bench preloaded have been applied, as the worker's deal agent
waits for the reference data. Run by the bench as ``python -m app.engine.faust_cap``.
"""

from __future__ import annotations

import asyncio
import os
import sys

import faust

from app.catalog import internal_partitions
from app.cdc import messages
from app.domain.changes import Lineage
from app.engine.bench_work import DEALS, REFERENCE, REFERENCES_ENV, Work
from app.engine.credentials import faust_broker, faust_credentials
from app.settings import Settings, get_settings


def build(s: Settings, references: int) -> faust.App:
    app = faust.App(
        f"{s.app_id}-faust-cap",
        broker=faust_broker(s),
        broker_credentials=faust_credentials(s),
        store="rocksdb://",
        datadir=str(s.data_dir),
        autodiscover=False,
        topic_partitions=internal_partitions(s.topic_partitions, s.topic_profile),
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=s.commit_interval_s,
        producer_acks=-1,
        web_enabled=False,
    )
    work = Work(s)
    applied = [0]
    cdc = app.topic(
        *[s.topic(f"crm.public.{t}") for t in (*REFERENCE, *DEALS)], key_serializer="raw", value_serializer="raw"
    )
    rekeyed = app.topic(s.topic("sync.deal-changes"), key_serializer="raw", value_serializer="raw")
    partitions = internal_partitions(s.topic_partitions, s.topic_profile)
    deals = app.Table("cap-deals", key_type=bytes, value_type=bytes, partitions=partitions)
    outputs: dict[str, faust.TopicT] = {}

    def output(name: str) -> faust.TopicT:
        if name not in outputs:
            outputs[name] = app.topic(name, key_serializer="raw", value_serializer="raw")
        return outputs[name]

    @app.agent(cdc)
    async def ingest(stream):
        async for event in stream.events():
            msg = event.message
            table, change = work.change(msg.topic, event.key, event.value)
            if table in REFERENCE:
                work.apply_reference(table, change)
                applied[0] += 1
                continue
            opp = work.deal_of(table, change)
            lineage = Lineage(msg.topic, msg.partition, msg.offset, None, change.position.ts_ms)
            await rekeyed.send(key=opp.encode(), value=messages.deal_change(opp, change, lineage))

    @app.agent(rekeyed)
    async def decide(stream):
        while applied[0] < references:
            await asyncio.sleep(0.05)
        async for event in stream.events():
            msg = event.message
            change = messages.parse_deal_change(event.value, msg.topic, f"{msg.topic}/{msg.partition}/{msg.offset}")
            state, ready = work.decide(deals.get(event.key), change)
            for topic, key, value in ready:
                await output(topic).send(key=key, value=value)
            deals[event.key] = state

    return app


def main() -> int:
    s = get_settings()
    app = build(s, int(os.environ.get(REFERENCES_ENV, "0")))
    faust.Worker(app, loglevel="info").execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
