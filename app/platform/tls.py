"""The local platform's TLS material and client secrets, generated once under ``<platform_dir>/secure``.

A private CA signs the broker's certificate (SAN ``127.0.0.1`` and ``localhost``) and one client
certificate for the mutual-TLS listener. Keys are EC P-256, so generating everything takes a few
milliseconds. The broker's key store is PKCS#12 (Kafka's PEM key store wants a PBES1-encrypted key,
which ``cryptography`` no longer writes; Java reads PKCS#12 with AES); its trust store is the CA's
PEM (``ssl.truststore.type=PEM``). Secret files are mode 0600.
This CA exists for local development and tests only; it never signs anything else.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SCRAM_USER = "crm-erp-sync"
VALID_DAYS = 3650


@dataclass(frozen=True)
class SecureFiles:
    """Where the CA, the certificates and the generated passwords live."""

    dir: Path

    @property
    def ca_cert(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.dir / "ca.key"

    @property
    def broker_keystore(self) -> Path:
        """The broker's private key, certificate and the CA's, PKCS#12 under ``broker_keystore_password``."""
        return self.dir / "broker.p12"

    @property
    def broker_keystore_password(self) -> Path:
        return self.dir / "broker-keystore.password"

    @property
    def client_cert(self) -> Path:
        return self.dir / "client.pem"

    @property
    def client_key(self) -> Path:
        """The mTLS client's private key, encrypted with ``client_key_password``."""
        return self.dir / "client.key"

    @property
    def client_key_password(self) -> Path:
        return self.dir / "client-key.password"

    @property
    def scram_password(self) -> Path:
        """The password of the local broker's SCRAM-SHA-512 user ``SCRAM_USER``."""
        return self.dir / "scram.password"

    def all(self) -> tuple[Path, ...]:
        return (
            self.ca_cert,
            self.ca_key,
            self.broker_keystore,
            self.broker_keystore_password,
            self.client_cert,
            self.client_key,
            self.client_key_password,
            self.scram_password,
        )

    def complete(self) -> bool:
        return all(p.exists() for p in self.all())


def _write(path: Path, data: bytes, secret: bool = False) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    tmp.replace(path)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "crm-erp-sync local platform"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _certificate(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    extensions: list[tuple[x509.ExtensionType, bool]],
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
    )
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical=critical)
    return builder.sign(issuer_key, hashes.SHA256())


def _leaf(
    common_name: str,
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    usage: x509.ObjectIdentifier,
    san: list[x509.GeneralName] | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    extensions: list[tuple[x509.ExtensionType, bool]] = [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (x509.ExtendedKeyUsage([usage]), False),
        (x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False),
    ]
    if san:
        extensions.append((x509.SubjectAlternativeName(san), False))
    return _certificate(_name(common_name), key, ca.subject, ca_key, extensions), key


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _encrypted_pkcs8(key: ec.EllipticCurvePrivateKey, password: str) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password.encode()),
    )


def ensure(folder: Path) -> SecureFiles:
    """The secure material under ``folder``: generated when any file is missing, else reused as is."""
    files = SecureFiles(folder)
    if files.complete():
        return files
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("crm-erp-sync local CA")
    ca = _certificate(
        ca_name,
        ca_key,
        ca_name,
        ca_key,
        [
            (x509.BasicConstraints(ca=True, path_length=0), True),
            (x509.KeyUsage(False, False, False, False, False, True, True, False, False), True),
            (x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False),
        ],
    )
    broker, broker_key = _leaf(
        "localhost",
        ca,
        ca_key,
        ExtendedKeyUsageOID.SERVER_AUTH,
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    client, client_key = _leaf(SCRAM_USER, ca, ca_key, ExtendedKeyUsageOID.CLIENT_AUTH)

    broker_pw, client_pw, scram_pw = (secrets.token_urlsafe(24) for _ in range(3))
    _write(files.ca_cert, _pem(ca))
    _write(
        files.ca_key,
        ca_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        secret=True,
    )
    _write(files.broker_keystore_password, broker_pw.encode(), secret=True)
    keystore = pkcs12.serialize_key_and_certificates(
        b"broker", broker_key, broker, [ca], serialization.BestAvailableEncryption(broker_pw.encode())
    )
    _write(files.broker_keystore, keystore, secret=True)
    _write(files.client_key_password, client_pw.encode(), secret=True)
    _write(files.client_key, _encrypted_pkcs8(client_key, client_pw), secret=True)
    _write(files.client_cert, _pem(client))
    _write(files.scram_password, scram_pw.encode(), secret=True)
    return files
