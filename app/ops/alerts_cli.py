"""``crm-erp-sync alerts``: the drift alert ledger read from its changelog; operators' actions produced.

Read like the exception ledger (assigned, never subscribed, up to the high watermarks at the start:
no running worker needed, no consumer group disturbed). An acknowledgement or resolution is an
``AlertAction`` on ``sync.alert-actions`` (the worker's ledger folds it in) and an ``AuditRecord``
saying who and why, produced as registry Avro with the subjects' registered versions.
"""

from __future__ import annotations

import datetime as dt

from app.domain.alert_ledger import Row
from app.engine.reader import TIMEOUT_S, MissingTopicError
from app.ops.exceptions_cli import AvroOutputs
from app.ops.reconcile import read_changelog
from app.readmodels import alert_ledger as ledger
from app.settings import Settings


def read(s: Settings, timeout_s: float = TIMEOUT_S) -> tuple[dict[str, Row], int]:
    """Every row by alert id and how many values did not parse (MissingTopicError: no ledger yet)."""
    return ledger.parse(read_changelog(s, timeout_s, topic=ledger.changelog_topic(s.app_id)))


def act(s: Settings, alert_id: str, action: str, operator: str, note: str) -> None:
    """Acknowledge or resolve ``alert_id`` (Refused when it does not apply; OpsError when Kafka fails)."""
    try:
        rows = read(s)[0]
    except MissingTopicError:
        rows = None
    outputs = ledger.act(rows, alert_id, action, operator, note, dt.datetime.now(dt.UTC))
    avro = AvroOutputs(s)
    avro.send([avro.encode(o) for o in outputs])
