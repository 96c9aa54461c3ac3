"""The service's settings: the only module that reads the environment.

Every variable is prefixed ``CRM_ERP_`` (``kafka_bootstrap`` is ``CRM_ERP_KAFKA_BOOTSTRAP``).
Defaults point at the embedded local platform started by ``crm-erp-sync platform up``; its
ports avoid the usual 9092/8081 so it never collides with a Kafka or registry a developer
already runs.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


BROKER_PORT_STEP = 100  # node k of a local cluster listens on node 1's ports + BROKER_PORT_STEP·(k-1)


def local_bootstrap(port: int, brokers: int) -> str:
    """Every node of the local cluster: a client that starts while one is down still finds the others."""
    return ",".join(f"127.0.0.1:{port + BROKER_PORT_STEP * k}" for k in range(brokers))


class Settings(BaseSettings):
    # hide_input_in_errors: a model-level error would otherwise print every raw input, passwords included
    model_config = SettingsConfigDict(env_prefix="CRM_ERP_", frozen=True, extra="ignore", hide_input_in_errors=True)

    # --- where the service connects -------------------------------------------------
    kafka_bootstrap: str = Field(
        "127.0.0.1:19092", description="Kafka bootstrap servers (default: the local platform's broker)"
    )
    registry_url: str = Field(
        "http://127.0.0.1:18081/apis/ccompat/v7",
        description="Confluent-compatible schema registry base URL (default: the local platform's registry)",
    )

    # --- client security (app/client_config.py maps these); secrets only from env or files -
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol: PLAINTEXT, SSL (TLS, optionally mutual) or SASL_SSL"
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = Field(
        "SCRAM-SHA-512", description="SASL mechanism when the protocol is SASL_SSL"
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name (SASL_SSL)")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password (SASL_SSL); never logged")
    kafka_sasl_password_file: Path | None = Field(
        None, description="file holding the SASL password (instead of CRM_ERP_KAFKA_SASL_PASSWORD)"
    )
    kafka_ssl_ca_file: Path | None = Field(
        None, description="PEM CA bundle that verifies the brokers' certificates (system CAs if unset)"
    )
    kafka_ssl_cert_file: Path | None = Field(None, description="PEM client certificate for mutual TLS")
    kafka_ssl_key_file: Path | None = Field(None, description="PEM private key of the client certificate")
    kafka_ssl_key_password: SecretStr | None = Field(None, description="password of an encrypted client key")
    kafka_ssl_key_password_file: Path | None = Field(
        None, description="file holding the client key password (instead of CRM_ERP_KAFKA_SSL_KEY_PASSWORD)"
    )
    registry_username: str | None = Field(None, description="schema registry basic-auth user")
    registry_password: SecretStr | None = Field(None, description="schema registry basic-auth password")
    registry_password_file: Path | None = Field(
        None, description="file holding the registry password (instead of CRM_ERP_REGISTRY_PASSWORD)"
    )
    registry_ssl_ca_file: Path | None = Field(
        None, description="PEM CA bundle that verifies an https registry (system CAs if unset)"
    )
    registry_ssl_cert_file: Path | None = Field(None, description="PEM client certificate for the registry (mTLS)")
    registry_ssl_key_file: Path | None = Field(None, description="PEM private key of the registry client certificate")
    registry_allow_plain_http_auth: bool = Field(
        False, description="allow registry basic-auth credentials over plain http:// (they travel in clear text)"
    )

    # --- the Faust worker ----------------------------------------------------------
    app_id: str = Field("crm-erp-sync", description="Faust app id: consumer group and table prefix")
    web_host: str = Field("127.0.0.1", description="worker HTTP bind address (0.0.0.0 in containers)")
    web_port: int = Field(6066, description="worker HTTP port (/metrics, /health, /ready, /ops, /api/v1)")
    web_advertised_host: str | None = Field(
        None,
        description="the host other workers reach this one at, for the API's table routing (a pod's DNS "
        "name); default: CRM_ERP_WEB_HOST",
    )
    web_token: SecretStr | None = Field(
        None, description="bearer token /ops and /metrics require when set (/health and /ready stay open); never logged"
    )
    web_token_file: Path | None = Field(None, description="file holding the web token (instead of CRM_ERP_WEB_TOKEN)")
    log_format: str = Field("json", description="worker log lines: json (one object per line, with context) or text")
    data_dir: Path = Field(REPO_ROOT / ".platform" / "worker", description="Faust/RocksDB state folder")
    session_timeout_s: float = Field(
        10.0, description="consumer session timeout: how soon a dead worker's partitions move"
    )
    standby_replicas: int = Field(
        0,
        ge=0,
        description="standby copies of each table partition other workers keep from its changelog: a worker "
        "taking over a dead peer's partition recovers only what its standby had not read yet (with n workers, "
        "at most n-1)",
    )
    stall_after_s: float = Field(
        120.0, description="an input partition with lag whose committed offset has not moved this long is stuck"
    )
    commit_interval_s: float = Field(
        2.8, description="how often input offsets are committed: what a crashed worker re-reads and re-sends"
    )
    # 1024 events / 256 KiB (Faust's defaults are 4096 / 1024): a worker catching up on 200 000 events
    # peaked at 274 MB instead of 315-345 MB, 925 instead of 979-1004 events/s (docs/performance.md).
    stream_buffer_events: int = Field(
        1024, description="events each input partition may hold in memory ahead of its agent (Faust's buffer)"
    )
    consumer_fetch_kib: int = Field(
        256,
        description="most bytes one fetch takes from an input partition (KiB): with the buffer, what a backlog holds",
    )
    topic_partitions: int | None = Field(
        None, description="partitions of the service's internal topics and tables (default: the topic profile's)"
    )
    topic_profile: str = Field("local", description="environment profile of topics/profiles.toml the topics follow")
    allow_under_replicated: bool = Field(
        False, description="start even when catalog topics are replicated below the topic profile's replication"
    )
    # 32/16 keeps one worker under 300 MB at 200 000 events (288 MB; 345 MB with 96/32, which ran 6 %
    # faster in that pair of runs): docs/performance.md, 7 Dec 2026. More memory buys a little speed.
    rocksdb_cache_mb: int = Field(
        32, description="block cache shared by every table's RocksDB, memtables included: its memory bound (MiB)"
    )
    rocksdb_memtable_mb: int = Field(
        16, description="memtables of every table's RocksDB together, before they are flushed (MiB, within the cache)"
    )
    failpoints: str = Field(
        "",
        description="tests only: <flow>.<point>[:<topic>][@<n>],… kills the worker there (docs/guarantees.md)",
    )

    topic_prefix: str = Field("", description="prepended to every catalog topic name (and so to subjects)")

    # --- opportunity-to-order policy -------------------------------------------------
    closed_won_stage: str = Field("CLOSED_WON", description="canonical stage that turns a deal into an order")
    integration_crm_user: str = Field(
        "005-integration", description="CRM user the service writes as: its changes never become ERP commands"
    )
    salesforce_integration_client: str | None = Field(
        "crm-erp-sync",
        description="API client id the service's Salesforce write-backs use: Salesforce change events whose "
        "changeOrigin names it (client=<id>) never become ERP commands; empty: none are suppressed",
    )
    salesforce_topics: list[str] = Field(
        default_factory=list,
        description="more topics carrying Salesforce change events, by full name (e.g. one topic a connector writes "
        "every channel to), read beside the catalog's salesforce.* topics",
    )
    max_discount_percent: float = Field(30.0, description="largest discount off the price book before rejection")
    amount_tolerance: float = Field(0.01, description="allowed difference between header and line amounts")
    validation_grace_s: float = Field(
        10.0, description="how long a closed-won deal may stay incomplete before exceptions are raised"
    )
    retention_s: float = Field(
        90 * 86400.0,
        description="a settled deal (lost, deleted, paid in full; nothing open) is tombstoned after this long "
        "unchanged; resolved exceptions likewise",
    )
    renewal_lead_days: float = Field(
        90.0, description="how long before a won deal's contract term ends the CRM is asked for its renewal opportunity"
    )
    park_recheck_s: float = Field(2.0, description="how often parked deals are re-checked for their dependency")
    max_cdc_value_bytes: int = Field(
        1024 * 1024, description="a CDC value larger than this is quarantined (MESSAGE_TOO_LARGE) without decoding it"
    )
    mappings_dir: Path = Field(
        REPO_ROOT / "app" / "mappings" / "crm", description="declarative CRM column mappings (<table>.toml)"
    )
    retry_in_place: int = Field(3, description="transient failures retried in place (short backoff) before a tier")
    retry_delays: str = Field(
        "10s=10,1m=60,10m=600", description="retry tiers <topic suffix>=<delay seconds>; then the dead-letter topic"
    )
    escalation_rules: Path = Field(
        REPO_ROOT / "app" / "rules" / "escalation.toml", description="routes for open exceptions past their SLA"
    )
    ownership_rules: Path = Field(
        REPO_ROOT / "app" / "rules" / "ownership.toml",
        description="what a CRM edit to an ERP-owned account field does: restore the ERP's value, or alert only",
    )
    fx_rates: Path = Field(
        REPO_ROOT / "app" / "rules" / "fx-rates.toml",
        description="rates into one base currency for escalation thresholds (read again when the file changes)",
    )
    escalation_check_s: float = Field(
        30.0, description="how often open exceptions and drift alerts are checked against their SLA"
    )
    sla_accept_s: float = Field(900, description="ERP acceptance due this long after the create command")
    sla_ship_s: float = Field(7 * 86400, description="full shipment due this long after ERP acceptance")
    sla_invoice_s: float = Field(2 * 86400, description="invoice due this long after full shipment")
    sla_payment_s: float = Field(30 * 86400, description="payment due this long after invoicing (no due date)")
    sla_payment_grace_s: float = Field(3 * 86400, description="payment grace after an invoice's due date")
    auto_heal: bool = Field(
        True, description="re-issue a create once (same command id) before alerting a missing acceptance"
    )
    acceptance_billing_schedules: str = Field(
        "MILESTONE",
        description="billing schedules (comma-separated) whose invoices must wait for the customer's acceptance",
    )
    parity_check_s: float = Field(5.0, description="how often SLA deadlines are swept for missing ERP events")
    parity_windows: str = Field(
        "1h=3600,1d=86400", description="aggregate parity tumbling windows: <name>=<seconds>, comma-separated"
    )
    parity_gap_ratio: float = Field(
        0.02, description="aggregate parity: |1 - accepted/closed-won| per window beyond which an alert opens"
    )

    # --- the embedded local platform -----------------------------------------------
    platform_dir: Path = Field(
        REPO_ROOT / ".platform", description="jar cache, data, logs and pid files of the local platform"
    )
    platform_config_dir: Path = Field(
        REPO_ROOT / "local-platform", description="server.properties, log config and pom.xml"
    )
    kafka_brokers: int = Field(
        1,
        ge=1,
        le=9,
        description="brokers of the local KRaft cluster (3: `platform up --brokers 3`, each a broker and a "
        "controller; node k listens on node 1's ports + 100·(k-1))",
    )
    kafka_port: int = Field(19092, description="local broker PLAINTEXT port (node 1's)")
    kafka_sasl_ssl_port: int = Field(19094, description="local broker SASL_SSL (SCRAM-SHA-512) port")
    kafka_ssl_port: int = Field(19095, description="local broker SSL port; a client certificate is required")
    controller_port: int = Field(19093, description="local KRaft controller port")
    registry_port: int = Field(18081, description="local Apicurio Registry HTTP port")
    registry_management_port: int = Field(18091, description="local registry management (health) port")
    registry_storage: str = Field("kafkasql", description="registry storage: kafkasql (durable) or mem")
    registry_java: str | None = Field(None, description="java (21+) that runs the registry; found if unset")
    kafka_heap: str = Field("512m", description="broker JVM heap")
    registry_heap: str = Field("384m", description="registry JVM heap")
    postgres_port: int = Field(15432, description="local CRM database (PostgreSQL) port, with `platform up --with-cdc`")
    postgres_bin: Path | None = Field(
        None, description="folder of PostgreSQL's server programs (initdb, postgres); newest under /usr/lib/postgresql"
    )
    connect_port: int = Field(18083, description="local Kafka Connect REST port, with `platform up --with-cdc`")
    connect_heap: str = Field("512m", description="Kafka Connect JVM heap")
    crm_database_url: SecretStr | None = Field(
        None,
        description="PostgreSQL URL of the CRM that `crm-writer` updates (default: the local platform's CRM); "
        "never logged",
    )

    @model_validator(mode="before")
    @classmethod
    def _addresses_follow_local_ports(cls, data: Any) -> Any:
        """Moving the local platform's ports moves the default addresses with them."""
        if isinstance(data, dict):
            if "kafka_bootstrap" not in data and ("kafka_port" in data or "kafka_brokers" in data):
                port = int(data.get("kafka_port", 19092))
                brokers = int(data.get("kafka_brokers", 1))
                data = {**data, "kafka_bootstrap": local_bootstrap(port, brokers)}
            if "registry_url" not in data and "registry_port" in data:
                data = {**data, "registry_url": f"http://127.0.0.1:{data['registry_port']}/apis/ccompat/v7"}
        return data

    @field_validator("kafka_security_protocol", "kafka_sasl_mechanism", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _security_is_consistent(self) -> Settings:
        """Contradictions are errors at start-up; the messages name variables, never values."""
        for name in ("kafka_sasl_password", "kafka_ssl_key_password", "registry_password", "web_token"):
            if getattr(self, name) is not None and getattr(self, f"{name}_file") is not None:
                raise ValueError(f"set CRM_ERP_{name.upper()} or CRM_ERP_{name.upper()}_FILE, not both")
        if self.kafka_security_protocol == "SASL_SSL" and not (
            self.kafka_sasl_username and (self.kafka_sasl_password or self.kafka_sasl_password_file)
        ):
            raise ValueError(
                "CRM_ERP_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs CRM_ERP_KAFKA_SASL_USERNAME and "
                "CRM_ERP_KAFKA_SASL_PASSWORD (or CRM_ERP_KAFKA_SASL_PASSWORD_FILE)"
            )
        for prefix in ("kafka", "registry"):
            if (getattr(self, f"{prefix}_ssl_cert_file") is None) != (getattr(self, f"{prefix}_ssl_key_file") is None):
                raise ValueError(f"set both CRM_ERP_{prefix.upper()}_SSL_CERT_FILE and _SSL_KEY_FILE, or neither")
        if bool(self.registry_username) != bool(self.registry_password or self.registry_password_file):
            raise ValueError("registry basic auth needs CRM_ERP_REGISTRY_USERNAME and a password (or password file)")
        if (
            self.registry_username
            and self.registry_url.startswith("http://")
            and not self.registry_allow_plain_http_auth
        ):
            raise ValueError(
                "CRM_ERP_REGISTRY_USERNAME over a plain http:// CRM_ERP_REGISTRY_URL would send the password in "
                "clear text: use https://, or set CRM_ERP_REGISTRY_ALLOW_PLAIN_HTTP_AUTH=true to accept that"
            )
        return self

    def topic(self, name: str) -> str:
        """The cluster name of catalog topic ``name``."""
        return f"{self.topic_prefix}{name}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
