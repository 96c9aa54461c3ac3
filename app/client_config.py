"""Address and security of every Kafka, schema-registry and Faust client, built from settings in one place.

Each confluent-kafka ``Producer``/``Consumer``/``AdminClient`` takes ``kafka_config(s, {...options})``,
each ``SchemaRegistryClient``/``AsyncSchemaRegistryClient`` takes ``registry_config(s, {...})``, plain
HTTP calls to the registry take ``registry_http(s)``; the Faust app's broker and credentials are
built from the same settings in ``app/engine/credentials.py``. So PLAINTEXT, TLS, mutual TLS and
SASL_SSL (SCRAM) are configured once, by the ``CRM_ERP_KAFKA_*`` / ``CRM_ERP_REGISTRY_*`` settings
(see ``app/settings.py`` and docs/operations.md, Security).

Secrets (SASL password, key password, registry password) come from the settings (environment) or
their ``*_FILE`` variants, read when a client is built; they are only ever placed in the client
configuration. Errors raised here name variables and paths, never a secret's value.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from app.domain.errors import ServiceError
from app.settings import Settings

TLS_PROTOCOLS = ("SSL", "SASL_SSL")

# settings that shape a connection: what a child process (worker, benchmark) must inherit
SECURITY_FIELDS = (
    "kafka_security_protocol",
    "kafka_sasl_mechanism",
    "kafka_sasl_username",
    "kafka_sasl_password",
    "kafka_sasl_password_file",
    "kafka_ssl_ca_file",
    "kafka_ssl_cert_file",
    "kafka_ssl_key_file",
    "kafka_ssl_key_password",
    "kafka_ssl_key_password_file",
    "registry_username",
    "registry_password",
    "registry_password_file",
    "registry_ssl_ca_file",
    "registry_ssl_cert_file",
    "registry_ssl_key_file",
    "registry_allow_plain_http_auth",
)


class ClientConfigError(ServiceError, ValueError):
    """A security file cannot be used; the message names the variable and the path, never a secret."""


def _var(field: str) -> str:
    return f"CRM_ERP_{field.upper()}"


def _file(s: Settings, field: str) -> str | None:
    path: Path | None = getattr(s, field)
    if path is None:
        return None
    if not path.is_file():
        raise ClientConfigError(f"{_var(field)}: {path} is not a readable file")
    return str(path)


def secret(s: Settings, field: str) -> str | None:
    """The value of secret ``field`` from the setting itself or else from its ``<field>_file``.

    A file's trailing newline is not part of the secret (``echo secret > file`` works).
    """
    value: SecretStr | None = getattr(s, field)
    if value is not None:
        return value.get_secret_value()
    path: Path | None = getattr(s, f"{field}_file")
    if path is None:
        return None
    try:
        text = path.read_text()
    except OSError as exc:
        raise ClientConfigError(f"{_var(field + '_file')}: cannot read {path} ({exc.strerror})") from None
    text = text.rstrip("\r\n")
    if not text:
        raise ClientConfigError(f"{_var(field + '_file')}: {path} is empty")
    return text


def kafka_config(s: Settings, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A confluent-kafka client configuration: bootstrap servers and security, ``options`` on top."""
    protocol = s.kafka_security_protocol
    conf: dict[str, Any] = {"bootstrap.servers": s.kafka_bootstrap, "security.protocol": protocol}
    if protocol in TLS_PROTOCOLS:
        conf["ssl.endpoint.identification.algorithm"] = "https"  # the broker's name must match its certificate
        ca = _file(s, "kafka_ssl_ca_file")
        if ca:
            conf["ssl.ca.location"] = ca
        cert = _file(s, "kafka_ssl_cert_file")
        if cert:
            conf["ssl.certificate.location"] = cert
            conf["ssl.key.location"] = _file(s, "kafka_ssl_key_file")
            key_password = secret(s, "kafka_ssl_key_password")
            if key_password:
                conf["ssl.key.password"] = key_password
    if protocol == "SASL_SSL":
        conf["sasl.mechanisms"] = s.kafka_sasl_mechanism
        conf["sasl.username"] = s.kafka_sasl_username
        conf["sasl.password"] = secret(s, "kafka_sasl_password")
    conf.update(options or {})
    return conf


def admin_client(s: Settings):
    """A confluent-kafka AdminClient for the configured cluster."""
    from confluent_kafka.admin import AdminClient

    return AdminClient(kafka_config(s))


def kafka_address(s: Settings) -> str:
    """The brokers and how the client meets them, for error messages: a wrong credential shows up as an
    unreachable broker in librdkafka's metadata calls, so the message says which protocol and user."""
    protocol = s.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return s.kafka_bootstrap
    user = f" {s.kafka_sasl_mechanism} user {s.kafka_sasl_username}" if protocol == "SASL_SSL" else ""
    return f"{s.kafka_bootstrap} ({protocol}{user})"


def kafka_ssl_context(s: Settings) -> ssl.SSLContext:
    """The TLS context of the Faust (aiokafka) clients: CA verification and host name check on."""
    ctx = ssl.create_default_context(cafile=_file(s, "kafka_ssl_ca_file"))
    cert = _file(s, "kafka_ssl_cert_file")
    if cert:
        ctx.load_cert_chain(cert, _file(s, "kafka_ssl_key_file"), secret(s, "kafka_ssl_key_password"))
    return ctx


def registry_config(s: Settings, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A (Async)SchemaRegistryClient configuration: URL, basic auth and TLS, ``options`` on top."""
    conf: dict[str, Any] = {"url": s.registry_url}
    ca = _file(s, "registry_ssl_ca_file")
    if ca:
        conf["ssl.ca.location"] = ca
    cert = _file(s, "registry_ssl_cert_file")
    if cert:
        conf["ssl.certificate.location"] = cert
        conf["ssl.key.location"] = _file(s, "registry_ssl_key_file")
    if s.registry_username:
        conf["basic.auth.user.info"] = f"{s.registry_username}:{secret(s, 'registry_password')}"
    conf.update(options or {})
    return conf


def registry_http(s: Settings) -> dict[str, Any]:
    """Keyword arguments for an ``httpx`` client or call to the registry: basic auth and TLS."""
    import httpx

    kwargs: dict[str, Any] = {}
    if s.registry_username:
        kwargs["auth"] = httpx.BasicAuth(s.registry_username, secret(s, "registry_password") or "")
    ca, cert = _file(s, "registry_ssl_ca_file"), _file(s, "registry_ssl_cert_file")
    if ca or cert:
        ctx = ssl.create_default_context(cafile=ca)
        if cert:
            ctx.load_cert_chain(cert, _file(s, "registry_ssl_key_file"))
        kwargs["verify"] = ctx
    return kwargs


def security_env(s: Settings) -> dict[str, str]:
    """The connection settings that are set, as ``CRM_ERP_*`` variables for a child process.

    Callers that rebuild a child's environment from settings (the benchmark, the test sandbox)
    pass these on, so a worker they start connects the way they do.
    """
    env: dict[str, str] = {}
    for field in SECURITY_FIELDS:
        value = getattr(s, field)
        if value is None:
            continue
        env[_var(field)] = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
    return env
