"""The local platform's own pieces that need no process to test."""

from __future__ import annotations

import uuid

from app.platform import tls
from app.platform.local import Layout, _render, new_cluster_id
from app.settings import Settings


def test_a_kraft_cluster_id_never_starts_with_a_dash():
    """kafka-storage took '-9x…' for an option and a fresh broker failed to format (the CI run of 7 Dec)."""
    dash_first = uuid.UUID(bytes=b"\xf8" + b"\x00" * 15)  # base64url of 0xf8… begins with '-'
    ids = iter([dash_first, uuid.UUID(int=1)])
    cluster_id = new_cluster_id(lambda: next(ids))
    assert not cluster_id.startswith("-") and len(cluster_id) == 22
    assert all(not new_cluster_id().startswith("-") for _ in range(2000))


def test_one_node_keeps_its_old_places_and_a_cluster_gets_its_own(tmp_path):
    one = Layout(Settings(platform_dir=tmp_path))
    [node] = one.nodes
    assert (node.node_id, node.port, node.controller_port, node.dir) == (1, 19092, 19093, tmp_path / "kafka")
    assert node.proc.pid_file == tmp_path / "kafka.pid" and one.bootstrap == "127.0.0.1:19092"

    three = Layout(Settings(platform_dir=tmp_path, kafka_brokers=3))
    assert [(n.port, n.controller_port, n.sasl_ssl_port, n.ssl_port) for n in three.nodes] == [
        (19092, 19093, 19094, 19095),
        (19192, 19193, 19194, 19195),
        (19292, 19293, 19294, 19295),
    ]
    assert [n.dir for n in three.nodes] == [tmp_path / "kafka-3" / f"node-{k}" for k in (1, 2, 3)]
    assert len({n.proc.pid_file for n in three.nodes} | {node.proc.pid_file}) == 4


def test_a_cluster_node_is_rendered_with_the_whole_quorum_and_three_replicas(tmp_path):
    s = Settings(platform_dir=tmp_path, kafka_brokers=3)
    lay = Layout(s)
    node = lay.nodes[1]
    _render(s, lay, node, tls.ensure(lay.secure.dir))
    props = dict(
        line.split("=", 1) for line in node.props.read_text().splitlines() if line and not line.startswith("#")
    )
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093,2@127.0.0.1:19193,3@127.0.0.1:19293"
    assert props["advertised.listeners"].startswith("PLAINTEXT://127.0.0.1:19192,")
    assert props["log.dirs"] == str(node.dir / "data")
    for key in (
        "default.replication.factor",
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
    ):
        assert props[key] == "3", key
    assert props["min.insync.replicas"] == props["transaction.state.log.min.isr"] == "2"


def test_the_default_bootstrap_lists_every_node_of_the_local_cluster(monkeypatch):
    monkeypatch.setenv("CRM_ERP_KAFKA_BROKERS", "3")
    assert Settings().kafka_bootstrap == "127.0.0.1:19092,127.0.0.1:19192,127.0.0.1:19292"
    monkeypatch.setenv("CRM_ERP_KAFKA_BOOTSTRAP", "kafka:9092")
    assert Settings().kafka_bootstrap == "kafka:9092"  # an explicit address wins
