"""The worker and the clients over the local broker's secure listeners: SASL_SSL (SCRAM-SHA-512) and mTLS.

The sandbox itself (producing CDC, reading commands) uses the PLAINTEXT listener; only the client
under test connects securely, with CA verification and host name checks on.
"""

from __future__ import annotations

import os
import socket
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from app.client_config import kafka_config
from app.engine.reader import ReadError
from app.ops import reconcile
from app.platform import local
from app.settings import Settings
from tests.integration.test_opportunity_to_order import commands_for
from tests.support.crm import Crm
from tests.support.kafka import Sandbox

pytestmark = pytest.mark.integration

WRONG_PASSWORD = "definitely-not-the-password-4f9c"


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def secure(platform: Settings) -> Settings:
    """The platform's settings, once its secure listeners answer and the SCRAM user exists."""
    if "CRM_ERP_KAFKA_BOOTSTRAP" in os.environ:
        pytest.skip("an external platform: the secure listeners are the embedded platform's")
    for port in (platform.kafka_sasl_ssl_port, platform.kafka_ssl_port):
        assert _listening(port), (
            f"no secure listener on 127.0.0.1:{port}: the broker was started from an older server.properties; "
            "run `crm-erp-sync platform down` and `crm-erp-sync platform up`"
        )
    local.ensure_scram_user(platform)  # idempotent: `platform up` created it already
    return platform


@pytest.fixture
def crm(sandbox: Sandbox) -> Crm:
    sandbox.create_all()
    return Crm(sandbox)


def settings_from(env: dict[str, str]) -> Settings:
    fields = {k.removeprefix("CRM_ERP_").lower(): v for k, v in env.items()}
    return Settings(**fields)


@pytest.mark.parametrize("mode", ["sasl_ssl", "mtls"])
def test_a_secured_worker_turns_a_closed_won_deal_into_an_order(
    mode: str, secure: Settings, sandbox: Sandbox, crm: Crm, worker_factory
):
    crm.reference_data()
    crm.deal("opp-sec-1")
    sandbox.flush()
    env = local.secure_env(secure, mode)  # the Faust clients and the reference follower connect this way
    worker = worker_factory(**env)

    [(kind, command_id, body)] = commands_for(sandbox, "opp-sec-1", 1)
    assert kind == "CreateSalesOrder" and command_id.startswith("opp-sec-1:create:")
    assert body["customer_number"] == "C-1001" and str(body["amount"]) == "250.00"
    log = worker.log.read_text(errors="replace")
    for secret_file in ("scram.password", "client-key.password"):
        assert (secure.platform_dir / "secure" / secret_file).read_text().strip() not in log


def test_a_wrong_password_fails_clearly_and_is_never_shown(
    secure: Settings, sandbox: Sandbox, worker_factory, tmp_path
):
    sandbox.create_all()
    wrong = tmp_path / "wrong.password"
    wrong.write_text(WRONG_PASSWORD + "\n")
    env = {**local.secure_env(secure, "sasl_ssl"), "CRM_ERP_KAFKA_SASL_PASSWORD_FILE": str(wrong)}

    with pytest.raises(RuntimeError, match="worker exited") as exc:
        worker_factory(**env)
    log = (tmp_path / "worker0.log").read_text(errors="replace")
    assert "authentication failed" in log.lower(), log[-3000:]
    assert WRONG_PASSWORD not in log and WRONG_PASSWORD not in str(exc.value)


def test_a_wrong_password_fails_the_confluent_clients_clearly(secure: Settings, tmp_path, capfd):
    wrong = tmp_path / "wrong.password"
    wrong.write_text(WRONG_PASSWORD)
    env = {**local.secure_env(secure, "sasl_ssl"), "CRM_ERP_KAFKA_SASL_PASSWORD_FILE": str(wrong)}
    admin = AdminClient(kafka_config(settings_from(env)))
    with pytest.raises(KafkaException) as exc:
        admin.list_topics(timeout=3)
    out, err = capfd.readouterr()
    assert "Authentication failed" in err, err
    assert WRONG_PASSWORD not in f"{exc.value}{out}{err}"

    # the ops commands silence librdkafka's log; their error says how they tried to connect
    with pytest.raises(ReadError) as failed:
        reconcile.read_changelog(settings_from(env), timeout_s=3, topic="any-topic")
    assert f"(SASL_SSL SCRAM-SHA-512 user {env['CRM_ERP_KAFKA_SASL_USERNAME']})" in str(failed.value)
    out, err = capfd.readouterr()
    assert WRONG_PASSWORD not in f"{failed.value}{out}{err}"


def test_mutual_tls_needs_the_client_certificate(secure: Settings, sandbox: Sandbox, capfd):
    sandbox.create("sync.probe")
    topic = sandbox.topic("sync.probe")
    s = settings_from(local.secure_env(secure, "mtls"))

    producer = Producer(kafka_config(s, {"linger.ms": 0}))
    producer.produce(topic, key=b"k", value=b"over mTLS")
    assert producer.flush(30) == 0
    consumer = Consumer(kafka_config(s, {"group.id": f"mtls-{uuid.uuid4().hex[:6]}", "auto.offset.reset": "earliest"}))
    consumer.subscribe([topic])
    try:
        values = []
        for _ in range(40):
            values += [m.value() for m in consumer.consume(10, timeout=0.5) if m.error() is None]
            if values:
                break
    finally:
        consumer.close()
    assert values == [b"over mTLS"]

    anonymous = s.model_copy(update={"kafka_ssl_cert_file": None, "kafka_ssl_key_file": None})
    with pytest.raises(KafkaException):
        AdminClient(kafka_config(anonymous)).list_topics(timeout=5)
    assert "bad certificate" in capfd.readouterr().err  # the broker refuses a TLS client without one
