"""Both Kafka clients refuse a broker whose certificate names another host (item 9 of the review).

A real TLS listener on 127.0.0.1 presents a certificate signed by a CA the clients trust, but issued
for ``wrong.example``: librdkafka (``ssl.endpoint.identification.algorithm=https``, set explicitly)
and aiokafka (through the worker's ``kafka_ssl_context``) must both fail the handshake.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from app.client_config import kafka_config, kafka_ssl_context
from app.settings import Settings


def _cert(name: str, key, issuer_name: str, issuer_key, ca: bool, san: x509.GeneralName | None = None):
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([san or x509.DNSName(name)]), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def listener(tmp_path: Path, san: x509.GeneralName):
    """A TLS listener on 127.0.0.1 whose certificate, from a CA the clients trust, names ``san``."""
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _cert("test CA", ca_key, "test CA", ca_key, ca=True)
    leaf = _cert("broker", key, "test CA", ca_key, ca=False, san=san)
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "leaf.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(tmp_path / "leaf.pem", tmp_path / "leaf.key")
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    handshakes: list[str] = []
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            try:
                with server_ctx.wrap_socket(conn, server_side=True):
                    handshakes.append("completed")
            except (ssl.SSLError, OSError) as exc:
                handshakes.append(f"refused: {exc}")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    settings = Settings(
        kafka_bootstrap=f"127.0.0.1:{port}", kafka_security_protocol="SSL", kafka_ssl_ca_file=tmp_path / "ca.pem"
    )
    yield settings, handshakes
    stop.set()
    thread.join(5)
    server.close()


@pytest.fixture
def wrong_host_listener(tmp_path: Path):
    yield from listener(tmp_path, x509.DNSName("wrong.example"))


@pytest.fixture
def right_host_listener(tmp_path: Path):
    yield from listener(tmp_path, x509.IPAddress(ipaddress.ip_address("127.0.0.1")))


def _librdkafka_handshakes(settings: Settings, handshakes: list[str]) -> list[str]:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({**kafka_config(settings), "log_level": 0, "socket.timeout.ms": 2000})
    with pytest.raises(Exception):  # noqa: B017 - not a broker: no metadata whatever the handshake did
        admin.list_topics(timeout=3)
    return _seen(handshakes)


def _seen(handshakes: list[str]) -> list[str]:
    """The listener's view, once its thread has recorded the client's handshakes."""
    deadline = time.monotonic() + 5
    while not handshakes and time.monotonic() < deadline:
        time.sleep(0.05)
    return list(handshakes)


def test_librdkafka_checks_the_broker_name_explicitly(wrong_host_listener):
    settings, handshakes = wrong_host_listener
    assert kafka_config(settings)["ssl.endpoint.identification.algorithm"] == "https"
    seen = _librdkafka_handshakes(settings, handshakes)
    assert seen and all(h.startswith("refused") for h in seen), seen


def test_librdkafka_completes_the_handshake_when_the_name_matches(right_host_listener):
    """The control: the same CA and listener, a certificate for 127.0.0.1, and the handshake goes through."""
    assert "completed" in _librdkafka_handshakes(*right_host_listener)


def test_aiokafka_through_the_workers_ssl_context_refuses_the_wrong_host(wrong_host_listener):
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaConnectionError

    settings, handshakes = wrong_host_listener
    ctx = kafka_ssl_context(settings)
    assert ctx.check_hostname and ctx.verify_mode is ssl.CERT_REQUIRED

    async def connect() -> None:
        client = AIOKafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap, security_protocol="SSL", ssl_context=ctx,
            request_timeout_ms=3000,
        )  # fmt: skip
        try:
            await client.start()
        finally:
            await client.close()

    with pytest.raises(KafkaConnectionError):
        asyncio.run(connect())
    seen = _seen(handshakes)
    assert seen and all(h.startswith("refused") for h in seen), seen


def test_registry_credentials_over_plain_http_are_refused_unless_allowed():
    with pytest.raises(ValueError, match="clear text"):
        Settings(registry_url="http://registry:8081", registry_username="svc", registry_password="pw")
    Settings(registry_url="https://registry:8081", registry_username="svc", registry_password="pw")
    allowed = Settings(
        registry_url="http://registry:8081", registry_username="svc", registry_password="pw",
        registry_allow_plain_http_auth=True,
    )  # fmt: skip
    assert allowed.registry_username == "svc"
