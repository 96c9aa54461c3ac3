"""The registry probe behind ``crm_erp_sync_registry_up`` and ``/ready``."""

from __future__ import annotations

import asyncio
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.observe import registry_probe
from app.settings import get_settings


class Registry(BaseHTTPRequestHandler):
    """Answers only the probe's cheap request, as a registry would."""

    asked: list[str] = []

    def do_GET(self) -> None:
        Registry.asked.append(self.path)
        ok = self.path.endswith("/schemas/types")
        self.send_response(200 if ok else 404)
        self.end_headers()
        self.wfile.write(b'["JSON","PROTOBUF","AVRO"]' if ok else b"")

    def log_message(self, *args) -> None:
        pass


def _probe(monkeypatch: pytest.MonkeyPatch, url: str) -> bool:
    monkeypatch.setattr(registry_probe, "get_settings", lambda: get_settings().model_copy(update={"registry_url": url}))
    return asyncio.run(registry_probe.registry_reachable(max_age_s=0))


def test_a_registry_that_answers_is_up_and_is_asked_for_its_schema_types(monkeypatch) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert _probe(monkeypatch, f"http://127.0.0.1:{server.server_port}/apis/ccompat/v7/")
    finally:
        server.shutdown()
    assert Registry.asked == ["/apis/ccompat/v7/schemas/types"]


def test_a_registry_that_does_not_answer_is_down(monkeypatch) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert not _probe(monkeypatch, f"http://127.0.0.1:{port}")
