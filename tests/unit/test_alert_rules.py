"""The Prometheus alert rules are valid and the important ones fire when they should (promtool).

promtool comes from Debian's ``prometheus`` package; ``.ci/run`` installs it. Without it this
test fails rather than skips: the rules would otherwise ship unchecked.
"""

from __future__ import annotations

import shutil
import subprocess

from app.settings import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"


def promtool(*args: str) -> subprocess.CompletedProcess:
    tool = shutil.which("promtool")
    assert tool, "promtool not found: install Debian's prometheus package (.ci/run does)"
    return subprocess.run([tool, *args], cwd=DEPLOY, capture_output=True, text=True, timeout=120)


def test_the_rules_file_is_valid():
    run = promtool("check", "rules", "alert-rules.yml")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS: 15 rules found" in run.stdout  # 12 alerts, 3 lifecycle KPI recordings


def test_the_rule_unit_tests_pass():
    run = promtool("test", "rules", "alert-rules.test.yml")
    assert run.returncode == 0, run.stdout + run.stderr


def test_every_rule_names_only_metrics_the_service_or_faust_exports():
    import re

    from app.observe import metrics

    exported = {m._name for m in vars(metrics).values() if hasattr(m, "_name")}
    names = set(re.findall(r"\b(crm_erp_sync_[a-z_]+)", (DEPLOY / "alert-rules.yml").read_text()))
    counters = {n.removesuffix("_total").removesuffix("_bucket") for n in names}
    assert counters <= exported, counters - exported
