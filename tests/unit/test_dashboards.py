"""The Grafana dashboards query only series the service or Faust exports, through the provisioned datasource.

Series names come from the collectors themselves (``app.observe.metrics``, and Faust's ``FaustMetrics``
built with the prefix ``app/engine/web.py`` gives it), expanded the way prometheus_client exposes them:
counters as ``_total``, histograms as ``_bucket``/``_sum``/``_count``. docker-compose.yml's side
(mounts, datasource URL) is in test_compose.py.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from app.settings import REPO_ROOT

GRAFANA = REPO_ROOT / "deploy" / "grafana"
DASHBOARDS = {p.stem: json.loads(p.read_text()) for p in sorted((GRAFANA / "dashboards").glob("*.json"))}
DATASOURCES = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
METRIC_NAME = re.compile(r"\b(?:crm_erp_sync|faust)_\w+")
GRAFANA_VARIABLE = re.compile(r"\$__\w+")  # $__rate_interval, $__range: durations when Grafana sends the query

# the series names prometheus_client exposes for one metric family of each type
SERIES_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "enum": ("",),
    "unknown": ("",),
}


def series_names(families: Iterable) -> set[str]:
    return {family.name + suffix for family in families for suffix in SERIES_SUFFIXES[family.type]}


def service_series() -> set[str]:
    from app.observe import metrics

    collectors = [m for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)]
    return series_names(family for c in collectors for family in c.describe())


def faust_prefix() -> str:
    """The name prefix app/engine/web.py hands to ``FaustMetrics.create`` (normalised as Faust does)."""
    tree = ast.parse((REPO_ROOT / "app" / "engine" / "web.py").read_text())
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "attr", None) == "create"
        and getattr(node.func.value, "id", None) == "FaustMetrics"
    ]
    assert len(calls) == 1, "app/engine/web.py should create Faust's Prometheus metrics once"
    prefix = calls[0].args[1].value
    return prefix.replace("-", "_").replace(".", "_")


def faust_series() -> set[str]:
    from faust.sensors.prometheus import FaustMetrics

    registry = CollectorRegistry()
    FaustMetrics.create(registry, faust_prefix())
    return series_names(registry.collect())


def panels(dashboard: dict) -> Iterator[dict]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # the panels of a collapsed row


def queries() -> Iterator[tuple[str, dict, dict]]:
    for name, dashboard in DASHBOARDS.items():
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                yield f"{name}: {panel['title']} [{target['refId']}]", panel, target


def test_the_engineering_and_revops_dashboards_exist_with_distinct_uids():
    assert set(DASHBOARDS) == {"engineering", "revops"}
    assert len({d["uid"] for d in DASHBOARDS.values()}) == len(DASHBOARDS)
    assert len({d["title"] for d in DASHBOARDS.values()}) == len(DASHBOARDS)


def test_every_panel_has_a_title_and_at_least_one_query():
    for name, dashboard in DASHBOARDS.items():
        for panel in panels(dashboard):
            assert panel.get("title", "").strip(), f"{name}: panel {panel['id']} has no title"
            if panel["type"] == "row":
                continue
            targets = panel.get("targets", [])
            assert targets, f"{name}: {panel['title']} has no query"
            assert all(t.get("expr", "").strip() for t in targets), f"{name}: {panel['title']} has an empty query"
            ref_ids = [t["refId"] for t in targets]
            assert len(set(ref_ids)) == len(ref_ids), f"{name}: {panel['title']} repeats a refId"


def test_panel_ids_are_unique_and_panels_fit_the_grid():
    for name, dashboard in DASHBOARDS.items():
        ids = [p["id"] for p in panels(dashboard)]
        assert len(set(ids)) == len(ids), f"{name}: duplicate panel ids"
        for panel in panels(dashboard):
            grid = panel["gridPos"]
            assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, (name, panel["title"])


def test_every_query_names_only_series_the_service_or_faust_exports():
    service, faust = service_series(), faust_series()
    unknown = {}
    for where, _, target in queries():
        names = set(METRIC_NAME.findall(target["expr"]))
        assert names, f"{where} queries no crm_erp_sync_ or faust_ metric"
        missing = {n for n in names if n not in (service if n.startswith("crm_erp_sync_") else faust)}
        if missing:
            unknown[where] = sorted(missing)
    assert not unknown, unknown


def test_every_panel_and_query_uses_the_provisioned_prometheus_datasource():
    (datasource,) = DATASOURCES["datasources"]
    assert datasource["type"] == "prometheus"
    expected = {"type": "prometheus", "uid": datasource["uid"]}
    for name, dashboard in DASHBOARDS.items():
        assert "__inputs" not in dashboard and "${DS_" not in json.dumps(dashboard), name  # no import-time inputs
        for panel in panels(dashboard):
            if panel["type"] != "row":
                assert panel["datasource"] == expected, (name, panel["title"])
    for where, _, target in queries():
        assert target["datasource"] == expected, where


def test_queries_use_only_grafana_builtin_variables():
    for name, dashboard in DASHBOARDS.items():
        assert dashboard["templating"]["list"] == [], name  # add the variable to test_every_query_parses if needed
    for where, _, target in queries():
        assert "$" not in GRAFANA_VARIABLE.sub("", target["expr"]), where


def test_every_query_parses(tmp_path):
    """Offline PromQL parse: each query becomes a recording rule checked by ``promtool check rules``."""
    tool = shutil.which("promtool")
    if tool is None:
        pytest.skip("promtool not found (Debian's prometheus package); the PromQL syntax check needs it")
    rules, origin = [], {}
    for i, (where, _, target) in enumerate(queries()):
        record = f"dashboard:query_{i}"
        origin[record] = where
        rules.append({"record": record, "expr": GRAFANA_VARIABLE.sub("5m", target["expr"])})
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    run = subprocess.run([tool, "check", "rules", str(path)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr + "\n" + json.dumps(origin, indent=1)
    assert f"SUCCESS: {len(rules)} rules found" in run.stdout
