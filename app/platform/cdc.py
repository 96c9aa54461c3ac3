"""``crm-erp-sync platform up --with-cdc``: a real CRM database and a real CDC producer beside the broker.

PostgreSQL (Debian's server programs) holds a Salesforce-like CRM (``local-platform/postgres/``);
Kafka Connect (standalone, from Maven Central) runs Debezium's PostgreSQL connector with Apicurio's
Avro converter, configured from ``deploy/connect/``. Both run from the git-ignored platform folder
and are stopped by ``platform down`` like the broker and the registry.

Databases: ``crm_template`` carries the schema, roles' grants and the publication and is never
connected to; ``crm`` (the one the ``crm-source`` connector reads) and every test's own database
are created from it. Roles: ``postgres`` (administration), ``debezium`` (replication, read) and
``crm_writer`` (the write-back), each with a password generated once under ``secure/``.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

import httpx

from app.platform import fetch
from app.platform.errors import PlatformError
from app.platform.java import find_java
from app.platform.processes import Tracked, port_open, wait_until_answers
from app.settings import REPO_ROOT, Settings, local_bootstrap

POSTGRES_READY_S = 60
CONNECT_READY_S = 120
CONNECTOR_RUNNING_S = 120
ROLES = ("postgres", "debezium", "crm_writer")
TEMPLATE_DB = "crm_template"
CRM_DB = "crm"
SOURCE_CONNECTOR = "crm-source"
SOURCE_CONFIG = REPO_ROOT / "deploy" / "connect" / "debezium-postgres-source.json"
CRM_TABLES = ("account", "contact", "product", "pricebook_entry", "opportunity", "opportunity_line_item")


@dataclass(frozen=True)
class CdcLayout:
    """Where the CDC part of the local platform keeps its files."""

    settings: Settings

    @property
    def root(self) -> Path:
        return self.settings.platform_dir

    @property
    def pg_dir(self) -> Path:
        return self.root / "postgres"

    @property
    def pg_data(self) -> Path:
        return self.pg_dir / "data"

    @property
    def connect_dir(self) -> Path:
        return self.root / "connect"

    @property
    def plugins(self) -> Path:
        return self.root / "cache" / "connect-plugins"

    @property
    def secrets_file(self) -> Path:
        """The passwords of the database roles, in the properties format Connect's FileConfigProvider reads."""
        return self.root / "secure" / "crm-secrets.properties"

    @property
    def postgres(self) -> Tracked:
        return Tracked("postgres", self.root / "postgres.pid", str(self.pg_data), signal.SIGINT)

    @property
    def connect(self) -> Tracked:
        return Tracked("connect", self.root / "connect.pid", str(self.connect_dir / "worker.properties"))


def _pg_user() -> str | None:
    """The OS user PostgreSQL runs as: ``postgres`` when we are root (it refuses root), else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise PlatformError("running as root needs the OS user postgres (from Debian's postgresql package)") from None
    return "postgres"


def postgres_bin(s: Settings) -> Path:
    """The folder of ``initdb`` and ``postgres``: the setting, else the newest Debian cluster version."""
    if s.postgres_bin is not None:
        return s.postgres_bin
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if found:
        return found[-1].parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    raise PlatformError(
        "PostgreSQL's server programs are not installed: `make postgres` installs Debian's postgresql package "
        "(or set CRM_ERP_POSTGRES_BIN)"
    )


def passwords(lay: CdcLayout) -> dict[str, str]:
    """The roles' passwords, generated on first use and kept (0600) for Connect's file config provider."""
    path = lay.secrets_file
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text("".join(f"{role}_password={secrets.token_urlsafe(18)}\n" for role in ROLES))
    values = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {role: values[f"{role}_password"] for role in ROLES}


def database_url(s: Settings, role: str = "crm_writer", database: str = CRM_DB) -> str:
    """A libpq URL for one of the local roles (passwords stay in the URL: callers never print it)."""
    return f"postgresql://{role}:{passwords(CdcLayout(s))[role]}@127.0.0.1:{s.postgres_port}/{database}"


def _chown(path: Path, user: str | None) -> None:
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _start_postgres(s: Settings, lay: CdcLayout, say) -> None:
    proc = lay.postgres
    if proc.pid() is not None:
        say(f"postgres  already running (pid {proc.pid()})")
    else:
        if port_open(s.postgres_port):
            raise PlatformError(
                f"port {s.postgres_port} is taken by a process we did not start; set CRM_ERP_POSTGRES_PORT"
            )
        user = _pg_user()
        bindir = postgres_bin(s)
        lay.pg_dir.mkdir(parents=True, exist_ok=True)
        _chown(lay.pg_dir, user)
        if not (lay.pg_data / "PG_VERSION").exists():
            pwfile = lay.pg_dir / "initdb.pw"
            pwfile.write_text(passwords(lay)["postgres"] + "\n")
            _chown(pwfile, user)
            done = subprocess.run(
                [str(bindir / "initdb"), "-D", str(lay.pg_data), "-U", "postgres", f"--pwfile={pwfile}",
                 "--auth-local=scram-sha-256", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"],
                capture_output=True, text=True, check=False, user=user, group=user, extra_groups=[] if user else None,
            )  # fmt: skip
            pwfile.unlink()
            if done.returncode != 0:
                raise PlatformError(f"initdb failed:\n{done.stdout}{done.stderr}")
        pid = proc.start(
            [str(bindir / "postgres"), "-D", str(lay.pg_data), "-c", f"port={s.postgres_port}",
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={lay.pg_dir}",
             "-c", "wal_level=logical", "-c", "max_wal_senders=20", "-c", "max_replication_slots=20",
             "-c", "shared_buffers=64MB", "-c", "fsync=off"],
            lay.root / "logs" / "postgres.log", lay.pg_dir, user=user,
        )  # fmt: skip
        say(f"postgres  started (pid {pid}), waiting for it to answer…")
    wait_until_answers("postgres", lambda: _pg_answers(s), proc, POSTGRES_READY_S, lay.root / "logs" / "postgres.log")
    _provision(s)


def _pg_answers(s: Settings) -> bool:
    import psycopg

    try:
        with psycopg.connect(database_url(s, "postgres", "postgres"), connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def admin(s: Settings, database: str = "postgres"):
    """An autocommit connection as the ``postgres`` role."""
    import psycopg

    return psycopg.connect(database_url(s, "postgres", database), autocommit=True)


def _provision(s: Settings) -> None:
    """Roles, the template database with the CRM schema, and the ``crm`` database: idempotent."""
    pw = passwords(CdcLayout(s))
    schema = (s.platform_config_dir / "postgres" / "crm-schema.sql").read_text()
    with admin(s) as conn:
        for role, attrs in (("debezium", "LOGIN REPLICATION"), ("crm_writer", "LOGIN")):
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(f"{verb} ROLE {role} WITH {attrs} PASSWORD '{pw[role]}'")
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (TEMPLATE_DB,)).fetchone():
            conn.execute(f"CREATE DATABASE {TEMPLATE_DB}")
    with admin(s, TEMPLATE_DB) as conn:
        conn.execute(schema)
        tables = ", ".join(CRM_TABLES)
        conn.execute(f"GRANT SELECT ON {tables} TO debezium")
        conn.execute("GRANT SELECT, UPDATE ON account, opportunity TO crm_writer")
        conn.execute("GRANT INSERT ON opportunity TO crm_writer")  # renewal opportunities
    create_database(s, CRM_DB)


def create_database(s: Settings, name: str) -> None:
    """A CRM database ``name`` from the template (schema, grants, publication), unless it exists."""
    with admin(s) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE {TEMPLATE_DB}')


def drop_database(s: Settings, name: str) -> None:
    with admin(s) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _start_connect(s: Settings, lay: CdcLayout, say) -> None:
    proc = lay.connect
    url = connect_url(s)
    if proc.pid() is not None:
        say(f"connect   already running (pid {proc.pid()})")
    else:
        if port_open(s.connect_port):
            raise PlatformError(
                f"port {s.connect_port} is taken by a process we did not start; set CRM_ERP_CONNECT_PORT"
            )
        config = s.platform_config_dir / "connect"
        libs = fetch.jars(lay.root / "cache" / "connect-libs", config / "runtime.pom.xml")
        fetch.connect_plugin(lay.plugins, "debezium-postgres", config / "debezium-postgres.pom.xml")
        fetch.connect_plugin(lay.plugins, "apicurio-converter", config / "apicurio-converter.pom.xml")
        lay.connect_dir.mkdir(parents=True, exist_ok=True)
        props = lay.connect_dir / "worker.properties"
        props.write_text(
            Template((config / "worker.properties").read_text()).substitute(
                bootstrap=local_bootstrap(s.kafka_port, s.kafka_brokers),
                connect_port=s.connect_port,
                plugin_path=lay.plugins,
                offsets_file=lay.connect_dir / "offsets.dat",
            )
            + "config.providers=file\n"
            "config.providers.file.class=org.apache.kafka.common.config.provider.FileConfigProvider\n"
        )
        pid = proc.start(
            [find_java(17), f"-Xms{s.connect_heap}", f"-Xmx{s.connect_heap}", "-XX:+UseG1GC",
             "-Djava.awt.headless=true", f"-Dconnect.logs.dir={lay.root / 'logs' / 'connect'}",
             f"-Dlog4j2.configurationFile={config / 'log4j2.yaml'}", "-cp", f"{libs}/*",
             "org.apache.kafka.connect.cli.ConnectStandalone", str(props)],
            lay.root / "logs" / "connect.out", lay.connect_dir,
        )  # fmt: skip
        say(f"connect   started (pid {pid}), waiting for it to answer…")
    log = lay.root / "logs" / "connect.out"
    wait_until_answers("Kafka Connect", lambda: _connect_answers(url), proc, CONNECT_READY_S, log)


def connect_url(s: Settings) -> str:
    return f"http://127.0.0.1:{s.connect_port}"


def _connect_answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/connectors", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def source_config(s: Settings, database: str = CRM_DB, slot: str = "crm_erp_sync", **overrides: str) -> dict[str, str]:
    """``deploy/connect/debezium-postgres-source.json`` pointed at the local platform.

    The topic prefix follows the service's (``CRM_ERP_TOPIC_PREFIX`` + ``crm``), so the connector
    writes exactly the catalog's CDC topics; the registry URL is the registry's v2 API beside the
    ccompat one the service reads.
    """
    config: dict[str, str] = json.loads(SOURCE_CONFIG.read_text())
    registry_v2 = s.registry_url.replace("/apis/ccompat/v7", "/apis/registry/v2")
    config |= {
        "database.port": str(s.postgres_port),
        "database.dbname": database,
        "database.password": f"${{file:{CdcLayout(s).secrets_file}:debezium_password}}",
        "topic.prefix": f"{s.topic_prefix}crm",
        "slot.name": slot,
    }
    for side in ("key", "value"):
        config[f"{side}.converter.apicurio.registry.url"] = registry_v2
    return config | overrides


def put_connector(s: Settings, name: str, config: dict[str, Any]) -> None:
    resp = httpx.put(f"{connect_url(s)}/connectors/{name}/config", json=config, timeout=60)
    if resp.status_code >= 300:
        raise PlatformError(f"Kafka Connect refused connector {name}: {resp.status_code} {resp.text}")


def connector_state(s: Settings, name: str) -> dict[str, Any] | None:
    resp = httpx.get(f"{connect_url(s)}/connectors/{name}/status", timeout=10)
    return None if resp.status_code == 404 else resp.json()


def wait_running(s: Settings, name: str, seconds: float = CONNECTOR_RUNNING_S) -> None:
    """Wait until the connector and its task run; a failed task's trace is the error."""
    deadline = time.monotonic() + seconds
    state: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        state = connector_state(s, name)
        tasks = (state or {}).get("tasks", [])
        for task in tasks:
            if task.get("state") == "FAILED":
                raise PlatformError(f"connector {name} task failed:\n{task.get('trace', '')[:4000]}")
        if tasks and all(t.get("state") == "RUNNING" for t in tasks):
            return
        time.sleep(0.5)
    raise PlatformError(f"connector {name} is not running after {seconds:.0f}s: {state}")


def delete_connector(s: Settings, name: str) -> None:
    httpx.delete(f"{connect_url(s)}/connectors/{name}", timeout=60)


def drop_slot(s: Settings, slot: str) -> None:
    """Drop a replication slot once its connector has let go of it (an active slot cannot be dropped)."""
    import psycopg

    deadline = time.monotonic() + 30
    with admin(s) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone()
            if row is None:
                return
            if not row[0]:
                try:
                    conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                except psycopg.errors.ObjectInUse:
                    pass
                else:
                    return
            time.sleep(0.3)


def start(s: Settings, say=print) -> None:
    """Start PostgreSQL and Kafka Connect (the broker and registry must answer) and create the CDC
    topics; a no-op for what already runs."""
    from app.catalog import default_catalog
    from app.ops import topics_admin

    lay = CdcLayout(s)
    _start_postgres(s, lay, say)
    _start_connect(s, lay, say)
    # the producer's topics: here the platform stands in for the team that runs Debezium
    topics_admin.apply(s, [t for t in default_catalog() if t.owned_by == "producer"], say=lambda _: None)


def up(s: Settings, say=print) -> None:
    """``start``, then the ``crm-source`` connector on the ``crm`` database."""
    start(s, say)
    put_connector(s, SOURCE_CONNECTOR, source_config(s))
    wait_running(s, SOURCE_CONNECTOR)
    say(f"postgres  127.0.0.1:{s.postgres_port} database {CRM_DB} (passwords in {CdcLayout(s).secrets_file})")
    say(f"connect   {connect_url(s)}  connector {SOURCE_CONNECTOR} → topics {s.topic_prefix}crm.public.<table>")


def down(s: Settings, say=print) -> None:
    """Stop Connect, then PostgreSQL (Connect is a client of the database)."""
    lay = CdcLayout(s)
    for proc in (lay.connect, lay.postgres):
        if proc.pid_file.exists() or proc.pid() is not None:
            say(f"{proc.name:<9} {'stopped' if proc.stop() else 'was not running'}")


def status(s: Settings, say=print) -> bool | None:
    """Each CDC component's state; None when the CDC platform was never started here."""
    lay = CdcLayout(s)
    if not lay.pg_data.exists():
        return None
    pg_ok, connect_ok = _pg_answers(s), _connect_answers(connect_url(s))
    for proc, ok, addr in (
        (lay.postgres, pg_ok, f"127.0.0.1:{s.postgres_port}"),
        (lay.connect, connect_ok, connect_url(s)),
    ):
        pid = proc.pid()
        say(f"{proc.name:<9} {'up' if ok else 'down':<5} {addr}  ({f'pid {pid}' if pid else 'not started by us'})")
    return pg_ok and connect_ok
