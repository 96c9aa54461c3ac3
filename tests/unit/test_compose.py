"""docker-compose.yml agrees with the service's settings (no Docker engine here to run it)."""

from __future__ import annotations

import yaml

from app.settings import REPO_ROOT, Settings

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def host_ports(service: str) -> dict[int, int]:
    return {int(p.split(":")[-2]): int(p.split(":")[-1]) for p in SERVICES[service]["ports"]}


def test_compose_has_broker_registry_service_and_prometheus():
    assert {"kafka", "registry", "setup", "worker", "prometheus"} <= set(SERVICES)


def test_host_ports_match_the_local_platform_defaults():
    defaults = Settings()
    assert defaults.kafka_port in host_ports("kafka")
    assert defaults.registry_port in host_ports("registry")
    assert host_ports("worker") == {defaults.web_port: defaults.web_port}


def test_kafka_advertises_the_default_bootstrap_to_the_host():
    env = SERVICES["kafka"]["environment"]
    assert f"HOST://{Settings().kafka_bootstrap}" in env["KAFKA_ADVERTISED_LISTENERS"]


def test_the_worker_is_published_on_the_hosts_loopback_only_and_guards_ops_and_metrics_with_a_token():
    worker = SERVICES["worker"]
    assert all(p.startswith("127.0.0.1:") for p in worker["ports"])
    assert worker["environment"]["CRM_ERP_WEB_TOKEN_FILE"] == "/run/secrets/web-token"
    prom = yaml.safe_load((REPO_ROOT / "deploy" / "prometheus.yml").read_text())
    [job] = prom["scrape_configs"]
    assert job["authorization"]["credentials_file"] == "/run/secrets/web-token"
    assert COMPOSE["secrets"]["web-token"]["file"] == "./deploy/local-web-token"
    assert {"web-token"} <= set(worker["secrets"]) and {"web-token"} <= set(SERVICES["prometheus"]["secrets"])


def test_service_environment_names_only_real_settings():
    fields = {f"CRM_ERP_{name.upper()}" for name in Settings.model_fields}
    for service in ("setup", "worker"):
        env = SERVICES[service]["environment"]
        assert set(env) <= fields, set(env) - fields
        Settings(**{k.removeprefix("CRM_ERP_").lower(): v for k, v in env.items()})  # values parse


def test_registry_url_points_at_the_ccompat_api_of_the_registry_service():
    env = SERVICES["worker"]["environment"]
    container_port = host_ports("registry")[Settings().registry_port]
    assert env["CRM_ERP_REGISTRY_URL"] == f"http://registry:{container_port}/apis/ccompat/v7"
    assert env["CRM_ERP_KAFKA_BOOTSTRAP"] == "kafka:29092"
    assert "INTERNAL://kafka:29092" in SERVICES["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]


def test_prometheus_scrapes_the_worker_metrics_port():
    prom = yaml.safe_load((REPO_ROOT / "deploy" / "prometheus.yml").read_text())
    targets = [t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]]
    worker_port = int(SERVICES["worker"]["environment"]["CRM_ERP_WEB_PORT"])
    assert f"worker:{worker_port}" in targets
    assert SERVICES["worker"]["environment"]["CRM_ERP_WEB_HOST"] == "0.0.0.0"


def test_grafana_provisions_the_prometheus_datasource_and_mounts_the_dashboards():
    grafana, grafana_dir = SERVICES["grafana"], REPO_ROOT / "deploy" / "grafana"
    image, _, tag = grafana["image"].partition(":")
    assert image == "grafana/grafana-oss" and tag and tag != "latest"  # pinned
    assert "prometheus" in grafana["depends_on"]
    assert host_ports("grafana") == {3000: 3000}
    mounts = {}
    for volume in grafana["volumes"]:
        host, container, *_ = volume.split(":")
        assert (REPO_ROOT / host).is_dir(), host
        mounts[(REPO_ROOT / host).resolve()] = container
    provisioning = grafana_dir / "provisioning"
    assert mounts[provisioning / "datasources"] == "/etc/grafana/provisioning/datasources"
    assert mounts[provisioning / "dashboards"] == "/etc/grafana/provisioning/dashboards"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "dashboards.yml").read_text())["providers"]
    assert provider["type"] == "file"
    assert mounts[grafana_dir / "dashboards"] == provider["options"]["path"]
    assert {p.name for p in (grafana_dir / "dashboards").glob("*.json")} >= {"engineering.json", "revops.json"}
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(provider["options"]["path"] + "/")
    assert (grafana_dir / "dashboards" / home.rsplit("/", 1)[1]).is_file()


def test_grafana_datasource_points_at_the_prometheus_service():
    (datasource,) = yaml.safe_load(
        (REPO_ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"]
    (container_port,) = host_ports("prometheus").values()
    assert datasource["url"] == f"http://prometheus:{container_port}"
    assert datasource["uid"] == "prometheus"  # the dashboards refer to it by uid (test_dashboards.py)
