"""The Faust app's broker URL and credentials, from the same settings as every other client (app/client_config.py)."""

from __future__ import annotations

import faust
from faust.types.auth import CredentialsT

from app.client_config import TLS_PROTOCOLS, kafka_ssl_context, secret
from app.settings import Settings


def faust_broker(s: Settings) -> str:
    """The Faust broker URL (``kafka://`` whatever the protocol: ``faust_credentials`` carries that)."""
    return f"kafka://{s.kafka_bootstrap}"


def faust_credentials(s: Settings) -> CredentialsT | None:
    """Faust's ``broker_credentials``: None for PLAINTEXT, TLS for SSL, SASL over TLS for SASL_SSL."""
    protocol = s.kafka_security_protocol
    if protocol not in TLS_PROTOCOLS:
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(kafka_ssl_context(s))
    return faust.SASLCredentials(
        username=s.kafka_sasl_username,
        password=secret(s, "kafka_sasl_password"),
        ssl_context=kafka_ssl_context(s),
        mechanism=s.kafka_sasl_mechanism,
    )
