"""``topics check``'s view of a cluster whose brokers learn of a new topic one after another."""

from __future__ import annotations

from concurrent.futures import Future
from types import SimpleNamespace

from confluent_kafka import KafkaError, KafkaException

from app.ops import topics_admin


class LaggingBroker:
    """Lists a topic at once but answers its configs with UNKNOWN_TOPIC_OR_PART the first ``lag`` times:
    what a three-broker cluster did right after `topics apply` (CI, the cluster test)."""

    def __init__(self, lag: int) -> None:
        self.lag, self.asked = lag, 0

    def list_topics(self, timeout: float):
        partition = SimpleNamespace(replicas=[1, 2, 3])
        return SimpleNamespace(topics={"t": SimpleNamespace(partitions={0: partition, 1: partition})})

    def describe_configs(self, resources):
        self.asked += 1
        out = {}
        for res in resources:
            fut: Future = Future()
            if self.asked <= self.lag:
                fut.set_exception(KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)))
            else:
                fut.set_result({"min.insync.replicas": SimpleNamespace(value="2")})
            out[res] = fut
        return out


def test_a_topic_its_configs_broker_does_not_know_yet_is_asked_again():
    broker = LaggingBroker(lag=2)
    partitions, replication, configs = topics_admin._describe(broker, ["t"])
    assert (partitions, replication, configs) == ({"t": 2}, {"t": 3}, {"t": {"min.insync.replicas": "2"}})
    assert broker.asked == 3
