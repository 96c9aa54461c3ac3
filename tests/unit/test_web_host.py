"""The worker binds one address and tells its peers another: table routing across hosts (pods)."""

from __future__ import annotations

from app.engine.app import build_app
from app.settings import Settings


def test_a_worker_bound_to_all_interfaces_advertises_its_own_name_to_its_peers(tmp_path):
    app = build_app(Settings(web_host="0.0.0.0", web_advertised_host="crm-erp-sync-0.crm-erp-sync", data_dir=tmp_path))
    assert app.conf.web_bind == "0.0.0.0"
    assert str(app.conf.canonical_url) == "http://crm-erp-sync-0.crm-erp-sync:6066"


def test_without_an_advertised_host_the_bind_address_is_the_url():
    app = build_app(Settings(web_host="127.0.0.1", web_port=6070))
    assert str(app.conf.canonical_url) == "http://127.0.0.1:6070"
