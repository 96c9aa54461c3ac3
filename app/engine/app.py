"""The Faust app, configured from settings (built by the composition root, app/engine/bootstrap.py)."""

from __future__ import annotations

from app.catalog import internal_partitions, profile
from app.engine.credentials import faust_broker, faust_credentials
from app.engine.producer import App
from app.engine.stream_topic import StreamTopic
from app.engine.table import Table
from app.settings import Settings


def build_app(settings: Settings) -> App:
    """The Faust app; its internal topics (changelogs, repartition) take the topic profile's replication."""
    replication = profile(settings.topic_profile).replication
    return App(  # faust.App sending through librdkafka: app/engine/producer.py
        settings.app_id,
        broker=faust_broker(settings),
        broker_credentials=faust_credentials(settings),  # None (PLAINTEXT), TLS or SASL over TLS
        store="rocksdb://",
        datadir=str(settings.data_dir),
        origin="app",
        autodiscover=False,
        topic_partitions=internal_partitions(settings.topic_partitions, settings.topic_profile),
        topic_replication_factor=replication,
        table_standby_replicas=settings.standby_replicas,
        web_bind=settings.web_host,
        web_host=settings.web_advertised_host or settings.web_host,  # the URL the assignor gives peers
        web_port=settings.web_port,
        web_in_thread=False,
        web_tables_enabled=False,  # table contents are customer data
        web_router_enabled=False,  # /router: the cluster's topology, to anyone who asks
        web_graph_enabled=False,
        web_stats_enabled=False,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.session_timeout_s / 4,
        broker_commit_interval=settings.commit_interval_s,
        producer_acks=-1,
        producer_linger_ms=5,
        stream_buffer_maxsize=settings.stream_buffer_events,
        consumer_max_fetch_size=settings.consumer_fetch_kib * 1024,
        Topic=StreamTopic,  # see app.engine.stream_topic: buffers must survive rebalances
        Table=Table,  # rows written at each commit: app/engine/table.py, app/engine/checkpoint.py
    )
