"""Client security settings map to confluent-kafka, registry, httpx and Faust configs; secrets stay hidden."""

from __future__ import annotations

import base64
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from pydantic import ValidationError

from app import client_config as cc
from app.engine.credentials import faust_broker, faust_credentials
from app.platform import tls
from app.settings import Settings
from tests.support.kafka import free_port

PASSWORD = "s3cr3t-Pa55word-7d1e"  # searched for in every repr, message and output below


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> tls.SecureFiles:
    return tls.ensure(tmp_path_factory.mktemp("secure"))


def sasl_settings(certs: tls.SecureFiles, **extra) -> Settings:
    fields = {
        "kafka_bootstrap": "broker-1:9094,broker-2:9094",
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_username": "svc-sync",
        "kafka_sasl_password": PASSWORD,
        "kafka_ssl_ca_file": certs.ca_cert,
    }
    return Settings(**{**fields, **extra})


HTTPS = {"registry_url": "https://registry.example:8081/apis/ccompat/v7"}


def test_plaintext_is_the_default_and_call_site_options_go_on_top():
    s = Settings(kafka_bootstrap="k:9092")
    assert cc.kafka_config(s) == {"bootstrap.servers": "k:9092", "security.protocol": "PLAINTEXT"}
    conf = cc.kafka_config(s, {"group.id": "g", "linger.ms": 5})
    assert conf == {"bootstrap.servers": "k:9092", "security.protocol": "PLAINTEXT", "group.id": "g", "linger.ms": 5}
    assert faust_credentials(s) is None
    assert faust_broker(s) == "kafka://k:9092"


def test_error_messages_say_how_the_client_meets_the_brokers(certs):
    assert cc.kafka_address(Settings(kafka_bootstrap="k:9092")) == "k:9092"
    sasl = "broker-1:9094,broker-2:9094 (SASL_SSL SCRAM-SHA-512 user svc-sync)"
    assert cc.kafka_address(sasl_settings(certs)) == sasl
    assert cc.kafka_address(Settings(kafka_bootstrap="k:9093", kafka_security_protocol="SSL")) == "k:9093 (SSL)"


def test_tls_settings_are_ignored_for_plaintext(certs):
    s = Settings(kafka_ssl_ca_file=certs.ca_cert)
    assert "ssl.ca.location" not in cc.kafka_config(s)


def test_sasl_ssl_maps_every_field(certs):
    conf = cc.kafka_config(sasl_settings(certs), {"group.id": "g"})
    assert conf == {
        "bootstrap.servers": "broker-1:9094,broker-2:9094",
        "security.protocol": "SASL_SSL",
        "ssl.endpoint.identification.algorithm": "https",
        "ssl.ca.location": str(certs.ca_cert),
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "svc-sync",
        "sasl.password": PASSWORD,
        "group.id": "g",
    }


def test_protocol_and_mechanism_are_case_insensitive(certs):
    s = sasl_settings(certs, kafka_security_protocol="sasl_ssl", kafka_sasl_mechanism="scram-sha-256")
    assert (s.kafka_security_protocol, s.kafka_sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-256")


def test_mutual_tls_maps_certificate_key_and_key_password_file(certs):
    s = Settings(
        kafka_security_protocol="SSL",
        kafka_ssl_ca_file=certs.ca_cert,
        kafka_ssl_cert_file=certs.client_cert,
        kafka_ssl_key_file=certs.client_key,
        kafka_ssl_key_password_file=certs.client_key_password,
    )
    conf = cc.kafka_config(s)
    assert conf == {
        "bootstrap.servers": s.kafka_bootstrap,
        "security.protocol": "SSL",
        "ssl.endpoint.identification.algorithm": "https",
        "ssl.ca.location": str(certs.ca_cert),
        "ssl.certificate.location": str(certs.client_cert),
        "ssl.key.location": str(certs.client_key),
        "ssl.key.password": certs.client_key_password.read_text(),
    }
    creds = faust_credentials(s)
    assert type(creds).__name__ == "SSLCredentials"
    assert creds.context.verify_mode == ssl.CERT_REQUIRED and creds.context.check_hostname


def test_the_password_file_is_read_without_its_trailing_newline(certs, tmp_path):
    secret_file = tmp_path / "sasl.password"
    secret_file.write_text(PASSWORD + "\n")
    s = sasl_settings(certs, kafka_sasl_password=None, kafka_sasl_password_file=secret_file)
    assert cc.kafka_config(s)["sasl.password"] == PASSWORD


def test_the_password_file_comes_from_the_environment(certs, tmp_path, monkeypatch):
    secret_file = tmp_path / "sasl.password"
    secret_file.write_text(PASSWORD)
    for name, value in {
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_USERNAME": "svc-sync",
        "KAFKA_SASL_PASSWORD_FILE": str(secret_file),
        "KAFKA_SSL_CA_FILE": str(certs.ca_cert),
    }.items():
        monkeypatch.setenv(f"CRM_ERP_{name}", value)
    s = Settings()
    assert s.kafka_sasl_password is None and s.kafka_sasl_password_file == secret_file
    assert cc.kafka_config(s)["sasl.password"] == PASSWORD
    assert PASSWORD not in repr(s)  # read at client build time, never held by the settings


def test_secrets_are_masked_in_repr_str_and_dumps(certs):
    s = sasl_settings(
        certs, registry_username="reg", registry_password=PASSWORD, kafka_ssl_key_password=PASSWORD, **HTTPS
    )
    for text in (repr(s), str(s), s.model_dump_json(), repr(s.model_dump()), repr(faust_credentials(s))):
        assert PASSWORD not in text
    assert "**********" in repr(s)


def test_validation_errors_never_show_a_password(certs, monkeypatch):
    monkeypatch.setenv("CRM_ERP_KAFKA_SASL_PASSWORD", PASSWORD)
    monkeypatch.setenv("CRM_ERP_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")  # but no user name
    with pytest.raises(ValidationError) as exc:
        Settings()
    assert "CRM_ERP_KAFKA_SASL_USERNAME" in str(exc.value) and PASSWORD not in str(exc.value)
    monkeypatch.setenv("CRM_ERP_KAFKA_SECURITY_PROTOCOL", "KERBEROS")  # a field error, next to the password
    with pytest.raises(ValidationError) as exc:
        Settings()
    assert "kafka_security_protocol" in str(exc.value) and PASSWORD not in str(exc.value)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_username": "u"}, "CRM_ERP_KAFKA_SASL_PASSWORD"),
        ({"kafka_sasl_password": PASSWORD, "kafka_sasl_password_file": Path("/x")}, "not both"),
        ({"kafka_ssl_cert_file": Path("/c.pem")}, "CRM_ERP_KAFKA_SSL_CERT_FILE and _SSL_KEY_FILE"),
        ({"registry_username": "reg"}, "CRM_ERP_REGISTRY_USERNAME"),
        ({"registry_password": PASSWORD}, "CRM_ERP_REGISTRY_USERNAME"),
    ],
)
def test_contradicting_security_settings_fail_at_start_up(fields, message):
    with pytest.raises(ValidationError) as exc:
        Settings(**fields)
    assert message in str(exc.value) and PASSWORD not in str(exc.value)


def test_unusable_files_are_named_without_their_content(certs, tmp_path):
    missing = tmp_path / "nope.pem"
    with pytest.raises(cc.ClientConfigError, match=r"CRM_ERP_KAFKA_SSL_CA_FILE: .*nope\.pem"):
        cc.kafka_config(sasl_settings(certs, kafka_ssl_ca_file=missing))
    empty = tmp_path / "empty.password"
    empty.write_text("\n")
    s = sasl_settings(certs, kafka_sasl_password=None, kafka_sasl_password_file=empty)
    with pytest.raises(cc.ClientConfigError, match=r"CRM_ERP_KAFKA_SASL_PASSWORD_FILE: .* is empty"):
        cc.kafka_config(s)
    s = sasl_settings(certs, kafka_sasl_password=None, kafka_sasl_password_file=tmp_path / "gone")
    with pytest.raises(cc.ClientConfigError, match="cannot read"):
        cc.kafka_config(s)


def test_faust_gets_scram_over_tls_with_a_verifying_context(certs):
    creds = faust_credentials(sasl_settings(certs))
    assert type(creds).__name__ == "SASLCredentials"
    assert creds.protocol.value == "SASL_SSL" and creds.mechanism.value == "SCRAM-SHA-512"
    assert (creds.username, creds.password) == ("svc-sync", PASSWORD)
    assert creds.ssl_context.verify_mode == ssl.CERT_REQUIRED and creds.ssl_context.check_hostname
    assert PASSWORD not in repr(creds)


def test_the_security_environment_rebuilds_the_same_settings(certs, monkeypatch):
    assert cc.security_env(Settings(kafka_bootstrap="k:1")) == {
        "CRM_ERP_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
        "CRM_ERP_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "CRM_ERP_REGISTRY_ALLOW_PLAIN_HTTP_AUTH": "False",
    }
    s = sasl_settings(certs, registry_username="reg", registry_password=PASSWORD, **HTTPS)
    env = cc.security_env(s)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CRM_ERP_KAFKA_BOOTSTRAP", s.kafka_bootstrap)
    monkeypatch.setenv("CRM_ERP_REGISTRY_URL", s.registry_url)
    again = Settings()
    assert cc.kafka_config(again) == cc.kafka_config(s)
    assert cc.registry_config(again) == cc.registry_config(s)


def test_a_failing_kafka_client_does_not_echo_the_password(certs, capfd):
    port = free_port()  # nothing listens: the client fails, and says so
    conf = cc.kafka_config(sasl_settings(certs, kafka_bootstrap=f"127.0.0.1:{port}"), {"socket.timeout.ms": 1000})
    admin = AdminClient(conf)
    with pytest.raises(KafkaException) as exc:
        admin.list_topics(timeout=2)
    out, err = capfd.readouterr()
    assert PASSWORD not in f"{exc.value!r}{exc.value}{out}{err}"
    with pytest.raises(KafkaException) as exc:
        AdminClient({**conf, "no.such.property": "x"})
    assert "no.such.property" in str(exc.value) and PASSWORD not in str(exc.value)


# --- the schema registry ---------------------------------------------------------------------


def test_registry_basic_auth_and_tls_map_to_the_client_config(certs):
    s = Settings(
        registry_url="https://registry.example:8081",
        registry_username="reg-user",
        registry_password=PASSWORD,
        registry_ssl_ca_file=certs.ca_cert,
        registry_ssl_cert_file=certs.client_cert,
        registry_ssl_key_file=certs.client_key,
    )
    assert cc.registry_config(s, {"timeout": 30}) == {
        "url": "https://registry.example:8081",
        "basic.auth.user.info": f"reg-user:{PASSWORD}",
        "ssl.ca.location": str(certs.ca_cert),
        "ssl.certificate.location": str(certs.client_cert),
        "ssl.key.location": str(certs.client_key),
        "timeout": 30,
    }
    assert cc.registry_config(Settings(registry_url="http://r:1")) == {"url": "http://r:1"}


def test_registry_password_file_and_httpx_options(certs, tmp_path):
    secret_file = tmp_path / "registry.password"
    secret_file.write_text(PASSWORD + "\n")
    s = Settings(
        registry_username="reg-user", registry_password_file=secret_file, registry_ssl_ca_file=certs.ca_cert, **HTTPS
    )
    assert cc.registry_config(s)["basic.auth.user.info"] == f"reg-user:{PASSWORD}"
    kwargs = cc.registry_http(s)
    assert isinstance(kwargs["auth"], httpx.BasicAuth) and isinstance(kwargs["verify"], ssl.SSLContext)
    assert cc.registry_http(Settings()) == {}


class _BasicAuthRegistry(BaseHTTPRequestHandler):
    expected = ""

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != self.expected:
            body, status = b'{"error_code": 401, "message": "Unauthorized"}', 401
        else:
            body, status = b'["orders-value"]', 200
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_the_registry_client_sends_the_configured_basic_auth(tmp_path):
    _BasicAuthRegistry.expected = "Basic " + base64.b64encode(f"reg-user:{PASSWORD}".encode()).decode()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BasicAuthRegistry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        plain = {"registry_allow_plain_http_auth": True}  # a test server without TLS
        right = Settings(registry_url=url, registry_username="reg-user", registry_password=PASSWORD, **plain)
        assert SchemaRegistryClient(cc.registry_config(right)).get_subjects() == ["orders-value"]
        assert httpx.get(f"{url}/subjects", **cc.registry_http(right)).status_code == 200

        wrong = Settings(registry_url=url, registry_username="reg-user", registry_password="not-" + PASSWORD, **plain)
        with pytest.raises(SchemaRegistryError) as exc:
            SchemaRegistryClient(cc.registry_config(wrong, {"max.retries": 0})).get_subjects()
        assert exc.value.http_status_code == 401 and PASSWORD not in f"{exc.value}{exc.value!r}"
    finally:
        server.shutdown()


# --- the local platform's generated TLS material ----------------------------------------------


def test_local_tls_material_is_generated_once_and_chains_to_the_ca(certs):
    from cryptography import x509

    assert certs.complete()
    for path in (certs.ca_key, certs.broker_keystore, certs.client_key, certs.scram_password):
        assert path.stat().st_mode & 0o077 == 0, path
    broker_pem = tls.pkcs12.load_key_and_certificates(
        certs.broker_keystore.read_bytes(), certs.broker_keystore_password.read_bytes()
    )[1]
    san = broker_pem.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    ca = x509.load_pem_x509_certificate(certs.ca_cert.read_bytes())
    for leaf in (broker_pem, x509.load_pem_x509_certificate(certs.client_cert.read_bytes())):
        leaf.verify_directly_issued_by(ca)
    ctx = ssl.create_default_context(cafile=str(certs.ca_cert))  # Python loads the encrypted client key
    ctx.load_cert_chain(certs.client_cert, certs.client_key, certs.client_key_password.read_text())
    before = certs.ca_cert.read_bytes()
    assert tls.ensure(certs.dir).ca_cert.read_bytes() == before  # reused, not regenerated
