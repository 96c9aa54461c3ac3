"""``crm-erp-sync platform up|down|status|logs``: the embedded Kafka broker and Apicurio Registry.

Everything that shapes the platform is in ``local-platform/`` (server.properties, log4j2.yaml,
pom.xml); this module renders it with the configured ports and runs it. Downloads, data, logs
and pid files live under ``settings.platform_dir`` (git-ignored) and are reused across runs.
"""

from __future__ import annotations

import base64
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from string import Template

import httpx

from app.platform import cdc, fetch, tls
from app.platform.errors import PlatformError
from app.platform.java import find_java
from app.platform.processes import Tracked, port_open, wait_until_answers
from app.settings import BROKER_PORT_STEP, Settings, local_bootstrap

KAFKA_READY_S = 90
REGISTRY_READY_S = 240


@dataclass(frozen=True)
class Node:
    """One KRaft node of the local cluster: a broker and a controller in one JVM, with its own ports,
    data and pid file. Node 1 has the configured ports; node k those + ``BROKER_PORT_STEP``·(k-1)."""

    node_id: int
    port: int
    controller_port: int
    sasl_ssl_port: int
    ssl_port: int
    dir: Path
    proc: Tracked

    @property
    def props(self) -> Path:
        return self.dir / "server.properties"


@dataclass(frozen=True)
class Layout:
    """Where the platform keeps its files."""

    settings: Settings

    @property
    def root(self) -> Path:
        return self.settings.platform_dir

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def kafka_dir(self) -> Path:
        """The cluster's folder: ``kafka`` for one node (as before clusters existed), ``kafka-<n>`` for n,
        so a single node's data never meets a three-voter quorum."""
        n = self.settings.kafka_brokers
        return self.root / ("kafka" if n == 1 else f"kafka-{n}")

    @property
    def registry_dir(self) -> Path:
        return self.root / "registry"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def secure(self) -> tls.SecureFiles:
        """CA, certificates and generated passwords of the secure listeners (see app/platform/tls.py)."""
        return tls.SecureFiles(self.root / "secure")

    @property
    def nodes(self) -> list[Node]:
        s, n = self.settings, self.settings.kafka_brokers
        found = []
        for k in range(1, n + 1):
            step = BROKER_PORT_STEP * (k - 1)
            folder = self.kafka_dir if n == 1 else self.kafka_dir / f"node-{k}"
            name, pid_file = (
                ("kafka", self.root / "kafka.pid") if n == 1 else (f"kafka-{k}", self.root / f"kafka-{n}-node-{k}.pid")
            )
            found.append(
                Node(
                    node_id=k,
                    port=s.kafka_port + step,
                    controller_port=s.controller_port + step,
                    sasl_ssl_port=s.kafka_sasl_ssl_port + step,
                    ssl_port=s.kafka_ssl_port + step,
                    dir=folder,
                    proc=Tracked(name, pid_file, str(folder / "server.properties")),
                )
            )
        return found

    def node_logs(self, node: Node) -> Path:
        return self.logs / ("kafka" if self.settings.kafka_brokers == 1 else f"kafka-{node.node_id}")

    @property
    def bootstrap(self) -> str:
        """Every node's PLAINTEXT listener."""
        return local_bootstrap(self.settings.kafka_port, self.settings.kafka_brokers)

    def started_kafka(self) -> list[Tracked]:
        """Every broker process ``up`` started, whatever cluster size it was started with."""
        return [Tracked.recorded(path.stem, path) for path in sorted(self.root.glob("kafka*.pid"))]

    @property
    def registry(self) -> Tracked:
        return Tracked("registry", self.root / "registry.pid", f"-Dquarkus.http.port={self.settings.registry_port}")


def kafka_answers(bootstrap: str, timeout: float = 3.0, brokers: int = 1) -> bool:
    """True when a broker answers a metadata request that lists at least ``brokers`` live brokers."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0, "socket.timeout.ms": 2000})
    try:
        return len(admin.list_topics(timeout=timeout).brokers) >= brokers
    except Exception:
        return False


def registry_answers(url: str, timeout: float = 3.0) -> bool:
    try:
        return httpx.get(f"{url.rstrip('/')}/subjects", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def new_cluster_id(uuid4: Callable[[], uuid.UUID] = uuid.uuid4) -> str:
    """A KRaft cluster id: a UUID in 22 URL-safe base64 characters, never one starting with '-'.
    kafka-storage's argument parser takes such an id for an option and refuses to format (1 fresh
    broker in 64 failed to start); Kafka's own Uuid.randomUuid() skips those ids too."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _render(s: Settings, lay: Layout, node: Node, secure: tls.SecureFiles) -> None:
    n = s.kafka_brokers
    voters = ",".join(f"{m.node_id}@127.0.0.1:{m.controller_port}" for m in lay.nodes)
    rendered = Template((s.platform_config_dir / "server.properties").read_text()).substitute(
        node_id=node.node_id,
        quorum_voters=voters,
        kafka_port=node.port,
        controller_port=node.controller_port,
        sasl_ssl_port=node.sasl_ssl_port,
        ssl_port=node.ssl_port,
        data_dir=node.dir / "data",
        secure_dir=secure.dir,
        keystore_password=secure.broker_keystore_password.read_text().strip(),
        replication=min(n, 3),
        min_isr=min(n, 2) if n > 1 else 1,
    )
    node.dir.mkdir(parents=True, exist_ok=True)
    node.props.touch(mode=0o600)  # it holds the broker's key store password
    node.props.chmod(0o600)
    node.props.write_text(rendered)


def _start_node(s: Settings, lay: Layout, node: Node, cluster_id: str, say) -> None:
    for port, var in (
        (node.port, "KAFKA_PORT"),
        (node.controller_port, "CONTROLLER_PORT"),
        (node.sasl_ssl_port, "KAFKA_SASL_SSL_PORT"),
        (node.ssl_port, "KAFKA_SSL_PORT"),
    ):
        if port_open(port):
            raise PlatformError(f"port {port} is taken by a process we did not start; set CRM_ERP_{var}")
    libs = fetch.kafka_libs(lay.cache, s.platform_config_dir / "pom.xml")
    java = find_java(17)
    _render(s, lay, node, tls.ensure(lay.secure.dir))
    log_opts = [
        f"-Dkafka.logs.dir={lay.node_logs(node)}",
        f"-Dlog4j2.configurationFile={s.platform_config_dir / 'log4j2.yaml'}",
    ]
    classpath = ["-cp", f"{libs}/*"]
    fmt = subprocess.run(
        [java, *log_opts, *classpath, "kafka.tools.StorageTool", "format", "-t", cluster_id,
         "-c", str(node.props), "--ignore-formatted"],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    if fmt.returncode != 0:
        raise PlatformError(f"formatting the KRaft log dir of {node.proc.name} failed:\n{fmt.stdout}{fmt.stderr}")
    heap = s.kafka_heap
    pid = node.proc.start(
        [java, f"-Xms{heap}", f"-Xmx{heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true", *log_opts, *classpath,
         "kafka.Kafka", str(node.props)],
        lay.logs / f"{node.proc.name}.out",
        node.dir,
    )  # fmt: skip
    say(f"{node.proc.name:<9} started (pid {pid}) on 127.0.0.1:{node.port}")


def _start_kafka(s: Settings, lay: Layout, say) -> None:
    """Start every node that is not running (all of them before waiting: a cluster's controllers need
    their quorum to answer), then wait until the cluster lists every broker."""
    lay.kafka_dir.mkdir(parents=True, exist_ok=True)
    cluster_file = lay.kafka_dir / "cluster-id"
    if not cluster_file.exists():
        cluster_file.write_text(new_cluster_id())
    for node in lay.nodes:
        if node.proc.pid() is not None:
            say(f"{node.proc.name:<9} already running (pid {node.proc.pid()})")
        else:
            _start_node(s, lay, node, cluster_file.read_text().strip(), say)
    for node in lay.nodes:
        log = lay.node_logs(node) / "server.log"
        wait_until_answers(node.proc.name, lambda: kafka_answers(lay.bootstrap), node.proc, KAFKA_READY_S, log)
    first = lay.nodes[0]
    wait_until_answers(
        "kafka",
        lambda: kafka_answers(lay.bootstrap, brokers=s.kafka_brokers),
        first.proc,
        KAFKA_READY_S,
        lay.node_logs(first) / "server.log",
    )
    if not port_open(s.kafka_sasl_ssl_port):
        say(
            f"kafka     has no secure listener on {s.kafka_sasl_ssl_port}: it was started from an older "
            "server.properties; `crm-erp-sync platform down` then `up` adds it"
        )
        return
    ensure_scram_user(s)


def ensure_scram_user(s: Settings) -> str:
    """Upsert the local SCRAM-SHA-512 user (through PLAINTEXT) with the generated password; its name.

    KRaft keeps SCRAM credentials in the cluster metadata; ``kafka-storage format --add-scram`` only
    works on an unformatted log dir, so the credential is (re)written at every ``up`` instead: idempotent.
    """
    from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

    files = Layout(s).secure
    if not files.scram_password.exists():
        raise PlatformError(f"{files.scram_password} is missing: `crm-erp-sync platform down` then `up` recreates it")
    password = files.scram_password.read_bytes().strip()
    admin = AdminClient({"bootstrap.servers": Layout(s).bootstrap, "log_level": 0})
    upsert = UserScramCredentialUpsertion(
        tls.SCRAM_USER, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), password
    )
    for future in admin.alter_user_scram_credentials([upsert]).values():
        try:
            future.result(timeout=30)
        except Exception as exc:
            raise PlatformError(f"creating the local SCRAM user {tls.SCRAM_USER} failed: {exc}") from exc
    return tls.SCRAM_USER


def secure_env(s: Settings, mode: str = "sasl_ssl") -> dict[str, str]:
    """``CRM_ERP_*`` variables that connect a client to a local secure listener.

    ``sasl_ssl``: SCRAM-SHA-512 over TLS; ``mtls``: TLS with the generated client certificate. Secrets
    are passed as file paths, never as values.
    """
    files = Layout(s).secure
    env = {"CRM_ERP_KAFKA_SSL_CA_FILE": str(files.ca_cert)}
    if mode == "sasl_ssl":
        env |= {
            "CRM_ERP_KAFKA_BOOTSTRAP": f"127.0.0.1:{s.kafka_sasl_ssl_port}",
            "CRM_ERP_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "CRM_ERP_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "CRM_ERP_KAFKA_SASL_USERNAME": tls.SCRAM_USER,
            "CRM_ERP_KAFKA_SASL_PASSWORD_FILE": str(files.scram_password),
        }
    elif mode == "mtls":
        env |= {
            "CRM_ERP_KAFKA_BOOTSTRAP": f"127.0.0.1:{s.kafka_ssl_port}",
            "CRM_ERP_KAFKA_SECURITY_PROTOCOL": "SSL",
            "CRM_ERP_KAFKA_SSL_CERT_FILE": str(files.client_cert),
            "CRM_ERP_KAFKA_SSL_KEY_FILE": str(files.client_key),
            "CRM_ERP_KAFKA_SSL_KEY_PASSWORD_FILE": str(files.client_key_password),
        }
    else:
        raise ValueError(f"mode must be sasl_ssl or mtls, not {mode!r}")
    return env


def _start_registry(s: Settings, lay: Layout, say) -> None:
    url = f"http://127.0.0.1:{s.registry_port}/apis/ccompat/v7"
    if lay.registry.pid() is not None:
        say(f"registry  already running (pid {lay.registry.pid()})")
    else:
        if port_open(s.registry_port):
            raise PlatformError(
                f"port {s.registry_port} is taken by a process we did not start; set CRM_ERP_REGISTRY_PORT"
            )
        home = fetch.registry_home(lay.cache, s.platform_config_dir / "pom.xml")
        java = find_java(21, s.registry_java)
        storage: list[str] = []
        if s.registry_storage == "kafkasql":
            storage = [
                "-Dapicurio.storage.kind=kafkasql",
                f"-Dapicurio.kafkasql.bootstrap.servers={lay.bootstrap}",
            ]
        elif s.registry_storage != "mem":
            raise PlatformError(f"CRM_ERP_REGISTRY_STORAGE must be kafkasql or mem, not {s.registry_storage!r}")
        pid = lay.registry.start(
            [
                java,
                f"-Xmx{s.registry_heap}",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
                f"-XX:SharedArchiveFile={lay.cache / 'registry-cds.jsa'}",
                "-XX:+AutoCreateSharedArchive",
                "-Dquarkus.http.host=127.0.0.1",
                f"-Dquarkus.http.port={s.registry_port}",
                "-Dquarkus.management.host=127.0.0.1",
                f"-Dquarkus.management.port={s.registry_management_port}",
                "-Dapicurio.ccompat.use-canonical-hash=true",
                # one INFO line per request would dominate the log under test load
                "-Dquarkus.http.access-log.enabled=false",
                '-Dquarkus.log.category."io.apicurio.registry.logging.audit".level=WARN',
                *storage,
                "-jar",
                str(home / "quarkus-run.jar"),
            ],
            lay.logs / "registry.log",
            lay.registry_dir,
        )
        say(f"registry  started (pid {pid}), waiting for it to answer…")
    wait_until_answers(
        "registry", lambda: registry_answers(url), lay.registry, REGISTRY_READY_S, lay.logs / "registry.log"
    )


def up(s: Settings, say=print, with_cdc: bool = False) -> None:
    """Start what is not running and wait until all answer; a no-op when the platform is up.
    ``with_cdc``: PostgreSQL and Kafka Connect with Debezium too (app/platform/cdc.py)."""
    lay = Layout(s)
    lay.cache.mkdir(parents=True, exist_ok=True)
    _start_kafka(s, lay, say)
    _start_registry(s, lay, say)
    say(f"kafka     {lay.bootstrap}")
    if s.kafka_brokers > 1:
        say(
            f"cluster   {s.kafka_brokers} nodes, internal topics replicated {min(s.kafka_brokers, 3)}; for the "
            f"service: export CRM_ERP_KAFKA_BROKERS={s.kafka_brokers} CRM_ERP_TOPIC_PROFILE=production"
        )
    if port_open(s.kafka_sasl_ssl_port):
        say(
            f"secure    SASL_SSL 127.0.0.1:{s.kafka_sasl_ssl_port} (SCRAM-SHA-512 user {tls.SCRAM_USER}), "
            f"SSL 127.0.0.1:{s.kafka_ssl_port} (client certificate); CA, certificates and passwords in "
            f"{lay.secure.dir}"
        )
    say(f"registry  http://127.0.0.1:{s.registry_port}/apis/ccompat/v7  (storage: {s.registry_storage})")
    if with_cdc:
        cdc.up(s, say)


def stop_kafka(s: Settings, say=print) -> None:
    """Stop every broker ``up`` started, one node or a cluster."""
    procs = Layout(s).started_kafka()
    for proc in procs:
        say(f"{proc.name:<9} {'stopped' if proc.stop() else 'was not running'}")
    if not procs:
        say("kafka     was not running")


def down(s: Settings, say=print) -> None:
    """Stop exactly the processes ``up`` started (clients before what they use: Connect, PostgreSQL,
    the registry, the brokers)."""
    cdc.down(s, say)
    lay = Layout(s)
    say(f"{lay.registry.name:<9} {'stopped' if lay.registry.stop() else 'was not running'}")
    stop_kafka(s, say)


def status(s: Settings, say=print) -> bool:
    """Print each component's state; True when all answer."""
    lay = Layout(s)
    k_ok = kafka_answers(lay.bootstrap, timeout=2, brokers=s.kafka_brokers)
    r_ok = registry_answers(f"http://127.0.0.1:{s.registry_port}/apis/ccompat/v7", timeout=2)
    rows = [
        (node.proc, node.proc.pid() is not None and port_open(node.port), f"127.0.0.1:{node.port}")
        for node in lay.nodes
    ]
    for proc, ok, addr in (
        *rows,
        (lay.registry, r_ok, f"http://127.0.0.1:{s.registry_port}/apis/ccompat/v7"),
    ):
        pid = proc.pid()
        owner = f"pid {pid}" if pid else "not started by us"
        say(f"{proc.name:<9} {'up' if ok else 'down':<5} {addr}  ({owner})")
    return k_ok and r_ok and cdc.status(s, say) is not False


def logs(s: Settings, say=print) -> None:
    lay = Layout(s)
    paths = [p for node in lay.nodes for p in (lay.node_logs(node) / "server.log", lay.logs / f"{node.proc.name}.out")]
    for path in (*paths, lay.logs / "registry.log"):
        say(f"{path}{'' if path.exists() else '  (not yet written)'}")
