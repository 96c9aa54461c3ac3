"""The Kubernetes manifests render (kustomize, no cluster) and hold what a platform team requires.

Probes on ``/ready`` and ``/health``, the state directory on a persistent volume, non-root with a
read-only root file system and no privilege escalation, resource limits, credentials only as files
from Secrets (no secret in a manifest or an environment value), the HTTP port not exposed outside
the cluster, and every ``CRM_ERP_*`` variable a real setting. kustomize comes from ``kubectl
kustomize`` or a ``kustomize`` binary (``make kustomize`` builds one when neither is there).
"""

from __future__ import annotations

import shutil
import subprocess
from functools import cache
from typing import Any

import yaml

from app.settings import REPO_ROOT, Settings

BASE = REPO_ROOT / "deploy" / "kubernetes"
SECRET_WORDS = ("PASSWORD", "TOKEN", "SECRET", "KEY")


@cache
def rendered(path: str = str(BASE)) -> list[dict[str, Any]]:
    built = REPO_ROOT / ".venv" / "bin" / "kustomize"  # `make kustomize` builds it there when needed
    tool = shutil.which("kustomize") or (str(built) if built.exists() else None)
    if tool:
        command = [tool, "build", path]
    else:
        assert shutil.which("kubectl"), "neither kustomize nor kubectl found: run `make kustomize`"
        command = ["kubectl", "kustomize", path]
    run = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return [d for d in yaml.safe_load_all(run.stdout) if d]


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in rendered() if d["kind"] == kind]


def pod_specs() -> list[tuple[str, dict[str, Any]]]:
    return [
        (d["metadata"]["name"], d["spec"]["template"]["spec"])
        for d in rendered()
        if d["kind"] in ("StatefulSet", "Job")
    ]


def test_the_workers_are_a_stateful_set_with_probes_and_their_state_on_a_persistent_volume():
    [sts] = of_kind("StatefulSet")
    [worker] = sts["spec"]["template"]["spec"]["containers"]
    assert worker["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert worker["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    [config] = of_kind("ConfigMap")
    data_dir = config["data"]["CRM_ERP_DATA_DIR"]
    [claim] = sts["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in worker["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == data_dir
    env = {e["name"]: e.get("value") for e in worker["env"]}
    assert env["CRM_ERP_WEB_ADVERTISED_HOST"].endswith(f".{sts['spec']['serviceName']}")  # table routing by pod name


def test_every_pod_runs_as_non_root_with_a_read_only_root_and_resource_limits():
    specs = pod_specs()
    assert {name for name, _ in specs} == {"crm-erp-sync", "crm-erp-sync-setup"}
    for name, spec in specs:
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] != 0, name
        assert spec["automountServiceAccountToken"] is False, name
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            limits = c["resources"]["limits"]
            assert limits.get("cpu") and limits.get("memory") and c["resources"]["requests"].get("memory"), name


def test_credentials_are_files_from_secrets_never_values_in_a_manifest():
    assert of_kind("Secret") == []  # created by the operator (runbook), not shipped
    for name, spec in pod_specs():
        mounted = {v["name"]: v for v in spec["volumes"]}
        assert mounted["secrets"]["secret"]["secretName"], name
        for c in spec["containers"]:
            for e in c.get("env", []):
                if any(word in e["name"] for word in SECRET_WORDS):
                    assert e["name"].endswith("_FILE") and e["value"].startswith("/etc/crm-erp-sync/secrets/"), e
    for config in of_kind("ConfigMap"):
        assert not [k for k in config["data"] if any(w in k for w in SECRET_WORDS)]
    [monitor] = of_kind("ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["authorization"]["credentials"]["key"] == "web-token"


def test_the_http_port_is_not_exposed_outside_the_cluster():
    assert of_kind("Ingress") == []
    for service in of_kind("Service"):
        assert service["spec"].get("type", "ClusterIP") == "ClusterIP", service["metadata"]["name"]
    [policy] = of_kind("NetworkPolicy")
    assert policy["spec"]["ingress"] == [{"from": [{"podSelector": {}}], "ports": [{"port": 6066}]}]


def test_a_disruption_takes_one_worker_at_a_time_and_the_setup_job_applies_topics_and_schemas():
    [pdb] = of_kind("PodDisruptionBudget")
    [sts] = of_kind("StatefulSet")
    labels = sts["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    [job] = of_kind("Job")
    command = " ".join(job["spec"]["template"]["spec"]["containers"][0]["command"])
    assert "crm-erp-sync topics apply" in command and "crm-erp-sync schemas register" in command


def test_every_crm_erp_variable_in_the_manifests_is_a_real_setting():
    names = set()
    for config in of_kind("ConfigMap"):
        names |= set(config["data"])
    for _, spec in pod_specs():
        for c in spec["containers"]:
            names |= {e["name"] for e in c.get("env", [])}
    fields = {f"CRM_ERP_{name.upper()}" for name in Settings.model_fields}
    assert {n for n in names if n.startswith("CRM_ERP_")} <= fields


def test_the_example_overlay_renders_into_its_namespace_with_its_image_and_addresses():
    docs = rendered(str(REPO_ROOT / "deploy" / "overlays" / "production"))
    assert {d["metadata"].get("namespace") for d in docs} == {"crm"}
    [sts] = [d for d in docs if d["kind"] == "StatefulSet"]
    assert sts["spec"]["replicas"] == 3
    assert sts["spec"]["template"]["spec"]["containers"][0]["image"].endswith("/crm-erp-sync:0.1.0")
    [config] = [d for d in docs if d["kind"] == "ConfigMap"]
    assert config["data"]["CRM_ERP_KAFKA_BOOTSTRAP"].count(":9093") == 3
    assert config["data"]["CRM_ERP_DATA_DIR"] == "/var/lib/crm-erp-sync"  # merged, not replaced
