"""The service's settings: the only module that reads the environment.

Every variable is prefixed ``CRM_ERP_`` (``kafka_bootstrap`` is ``CRM_ERP_KAFKA_BOOTSTRAP``).
Defaults point at the embedded local platform started by ``crm-erp-sync platform up``; its
ports avoid the usual 9092/8081 so it never collides with a Kafka or registry a developer
already runs.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_ERP_", frozen=True, extra="ignore")

    # --- where the service connects -------------------------------------------------
    kafka_bootstrap: str = Field(
        "127.0.0.1:19092", description="Kafka bootstrap servers (default: the local platform's broker)"
    )
    registry_url: str = Field(
        "http://127.0.0.1:18081/apis/ccompat/v7",
        description="Confluent-compatible schema registry base URL (default: the local platform's registry)",
    )

    # --- the Faust worker ----------------------------------------------------------
    app_id: str = Field("crm-erp-sync", description="Faust app id: consumer group and table prefix")
    web_host: str = Field("127.0.0.1", description="worker HTTP bind address (0.0.0.0 in containers)")
    web_port: int = Field(6066, description="worker HTTP port (/metrics, /health)")
    data_dir: Path = Field(REPO_ROOT / ".platform" / "worker", description="Faust/RocksDB state folder")
    session_timeout_s: float = Field(
        10.0, description="consumer session timeout: how soon a dead worker's partitions move"
    )
    topic_partitions: int = Field(4, description="partitions of the service's internal topics")

    topic_prefix: str = Field("", description="prepended to every catalog topic name (and so to subjects)")

    # --- opportunity-to-order policy -------------------------------------------------
    closed_won_stage: str = Field("CLOSED_WON", description="canonical stage that turns a deal into an order")
    integration_crm_user: str = Field(
        "005-integration", description="CRM user the service writes as: its changes never become ERP commands"
    )
    max_discount_percent: float = Field(30.0, description="largest discount off the price book before rejection")
    amount_tolerance: float = Field(0.01, description="allowed difference between header and line amounts")
    validation_grace_s: float = Field(
        10.0, description="how long a closed-won deal may stay incomplete before exceptions are raised"
    )
    park_recheck_s: float = Field(2.0, description="how often parked deals are re-checked for their dependency")
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
    escalation_check_s: float = Field(30.0, description="how often open exceptions are checked against their SLA")
    sla_accept_s: float = Field(900, description="ERP acceptance due this long after the create command")
    sla_ship_s: float = Field(7 * 86400, description="full shipment due this long after ERP acceptance")
    sla_invoice_s: float = Field(2 * 86400, description="invoice due this long after full shipment")
    sla_payment_s: float = Field(30 * 86400, description="payment due this long after invoicing (no due date)")
    sla_payment_grace_s: float = Field(3 * 86400, description="payment grace after an invoice's due date")
    auto_heal: bool = Field(
        True, description="re-issue a create once (same command id) before alerting a missing acceptance"
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
    kafka_port: int = Field(19092, description="local broker PLAINTEXT port")
    controller_port: int = Field(19093, description="local KRaft controller port")
    registry_port: int = Field(18081, description="local Apicurio Registry HTTP port")
    registry_management_port: int = Field(18091, description="local registry management (health) port")
    registry_storage: str = Field("kafkasql", description="registry storage: kafkasql (durable) or mem")
    registry_java: str | None = Field(None, description="java (21+) that runs the registry; found if unset")
    kafka_heap: str = Field("512m", description="broker JVM heap")
    registry_heap: str = Field("384m", description="registry JVM heap")

    @model_validator(mode="before")
    @classmethod
    def _addresses_follow_local_ports(cls, data: Any) -> Any:
        """Moving the local platform's ports moves the default addresses with them."""
        if isinstance(data, dict):
            if "kafka_bootstrap" not in data and "kafka_port" in data:
                data = {**data, "kafka_bootstrap": f"127.0.0.1:{data['kafka_port']}"}
            if "registry_url" not in data and "registry_port" in data:
                data = {**data, "registry_url": f"http://127.0.0.1:{data['registry_port']}/apis/ccompat/v7"}
        return data

    def topic(self, name: str) -> str:
        """The cluster name of catalog topic ``name``."""
        return f"{self.topic_prefix}{name}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
