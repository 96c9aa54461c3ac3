"""Every private internal of faust-streaming, mode-streaming and aiokafka the engine relies on, pinned.

The engine (app/engine/) patches or depends on these functions and classes: the drain loop, the
seek, flow control, recovery's resume, the producer's send/flush/start, the conductor's callback,
the topic queue, changelog sends, the Prometheus monitor, the throwable queue, the committed offsets,
the RocksDB options and store, the commit and the drain the checkpoint hooks into. Each is pinned by a
hash of its source at the exact versions pyproject.toml pins, so an upgrade fails here, in one
place, naming what to re-read; the behaviour the engine needs from each is pinned by the tests of
the module that relies on it (test_eager_consumer, test_stream_topic, test_changelog_table,
test_rdkafka_producer, test_faust_metrics). After reading a changed source and re-running those,
update its hash here.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from importlib.metadata import version

import pytest

VERSIONS = {"faust-streaming": "0.15.3", "mode-streaming": "0.7.1", "aiokafka": "0.14.0"}
PINNED = {
    "faust.transport.consumer:Consumer._drain_messages": "44a2500309e83c63",
    "faust.transport.consumer:Consumer.perform_seek": "0e8c130ff4b0afd8",
    "faust.transport.consumer:Consumer.getmany": "4b168d84882a70d6",
    "faust.transport.consumer:Consumer._wait_next_records": "6218e1969a636b3f",
    "faust.transport.consumer:Consumer.stop_flow": "cf7e875a2b0d40e8",
    "faust.transport.consumer:Consumer.resume_flow": "db59630f25b5819b",
    "mode.services:Service.wait_first": "feade6a31f8a6789",
    "faust.tables.recovery:Recovery._resume_streams": "d986a6710c1aca98",
    "faust.tables.recovery:Recovery._restart_recovery": "6bd8a8558a2dffe4",
    "faust.transport.drivers.aiokafka:Producer.send": "0b5bd08f52e5e2a9",
    "faust.transport.drivers.aiokafka:Producer.flush": "36d0cb3615f65b01",
    "faust.transport.drivers.aiokafka:Producer.on_start": "219c9a7a785d77b2",
    "faust.transport.conductor:ConductorCompiler.build": "837cf521368c1ee4",
    "faust.topics:Topic.queue": "549dd774f3e314a7",
    "faust.tables.base:Collection.send_changelog": "3dd3884e1b5fc0e1",
    "faust.sensors.prometheus:PrometheusMonitor": "69a1537022641050",
    "mode.utils.queues:ThrowableQueue": "44872deb65478e1f",
    # the keyed runner reads the committed offsets Faust records after each commit (app/engine/keyed.py)
    "faust.transport.consumer:Consumer._commit_offsets": "1a69799041188441",
    # the shared RocksDB cache replaces the options Faust builds per store (app/engine/rocksdb.py)
    "faust.stores.rocksdb:RocksDBOptions.as_options": "d2a1bea17736d2eb",
    "faust.stores.rocksdb:Store.__init__": "c7c0fa2989e8ab4a",
    "faust.tables.base:Collection._new_store_by_url": "343a8125107d3f69",
    # checkpoint-batched state (app/engine/checkpoint.py): the commit it runs before, the drain before
    # a revoke or stop it runs after, the store it buffers, the writes of a table it replaces
    "faust.transport.consumer:Consumer._commit_tps": "a20e230b05ae8b15",
    "faust.transport.consumer:Consumer.on_partitions_revoked": "d04b7ae72c6fc206",
    "faust.app.base:App._consumer_wait_empty": "6bc313c48c064b16",
    "faust.app.base:App._on_partitions_revoked": "d5c895bbe57dc73a",
    "faust.stores.rocksdb:Store._get": "7ae8dfd6d7754a59",
    "faust.stores.rocksdb:Store._set": "4227e561e288d941",
    "faust.stores.rocksdb:Store._del": "07f42ff3caefffdd",
    "faust.stores.rocksdb:Store._visible_items": "545dc16a2b25e4a4",
    "faust.stores.rocksdb:Store.revoke_partitions": "3f85447a24fc34ff",
    "faust.stores.rocksdb:Store.apply_changelog_batch": "ea3344d369fc4ab5",
    "faust.stores.rocksdb:Store.set_persisted_offset": "b4c811926678346e",
    "faust.stores.rocksdb:Store.persisted_offset": "6f2e502fb86043a1",
    "faust.stores.rocksdb:Store.stop": "2e98db0eb7c7582b",
    "faust.tables.table:Table.on_key_set": "a370e35ca55c2c7e",
    "faust.tables.table:Table.on_key_del": "4f2900b2f9d24a08",
    "faust.tables.base:Collection.partition_for_key": "3b2291811b8dd791",
}


def _source(target: str) -> str:
    module, attr = target.split(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    obj = getattr(obj, "fget", obj)  # a property: its getter
    obj = getattr(obj, "fun", obj)  # a mode Service.task: its function
    return inspect.getsource(obj)


def test_the_pinned_versions_are_the_installed_ones():
    assert {name: version(name) for name in VERSIONS} == VERSIONS


@pytest.mark.parametrize("target", sorted(PINNED))
def test_every_internal_the_engine_relies_on_is_the_source_it_was_written_against(target):
    digest = hashlib.sha256(_source(target).encode()).hexdigest()[:16]
    assert digest == PINNED[target], f"{target} changed: re-read it against app/engine/, then update its hash"
