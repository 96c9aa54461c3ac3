"""The open-drift-alerts table: what is open right now, kept small enough for a timer to scan.

Written by the flows that emit drift alerts (deals, aggregate parity), in the partition of the deal
or currency the alert belongs to; ``app/agents/live.py`` turns it into gauges and ``/ops`` lists it.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from app.domain.outputs import DriftAlert, Output
from app.flows.step import Message, Write

OPEN_ALERTS = "open-drift-alerts"


def alert_writes(outputs: Sequence[Output | Message]) -> list[Write]:
    writes = []
    for out in outputs:
        if not isinstance(out, DriftAlert):
            continue
        v = out.value
        key = v["alert_id"].encode()
        if v["state"] != "OPEN":
            writes.append(Write(OPEN_ALERTS, key, None))
            continue
        row = {
            "kind": v["kind"],
            "amount": v["amount_at_risk"],
            "currency": v["currency"],
            "opened": v["opened_at"],
            # for the /ops page (app/observe/ops_page.py): ids, owner and a summary, no customer data
            "severity": v.get("severity"),
            "owner": v.get("suggested_owner"),
            "correlation_id": v.get("correlation_id"),
            "order_number": v.get("order_number"),
            "detail": (v.get("detail") or "")[:300],
        }
        writes.append(Write(OPEN_ALERTS, key, orjson.dumps(row)))
    return writes
