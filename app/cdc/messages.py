"""The JSON formats of the service's two internal topics, writer and reader side by side.

``sync.deal-changes``: everything that happens to one deal, keyed by opportunity id so one
partition owns the deal: a normalised CRM row change, an ERP order event, a re-check (a parked
deal's dependency, or an SLA deadline), or a renewal opportunity's stage for the deal it renews
(written by ``app.domain.orders.renewals.notice``). ``sync.reference-data``: an account, product or list
price as every worker holds it, and the ERP customer link of an account.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from app.domain.changes import Lineage, Op, Position, RowChange
from app.domain.customer_links import CustomerLink
from app.domain.feedback.lifecycle import ErpEvent, ErpKind
from app.domain.orders.decide import DealChange
from app.domain.orders.renewals import RenewalSeen
from app.domain.orders.resync import SourceGap


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(type(value).__name__)


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default)


def deal_change(opp: str, change: RowChange, lineage: Lineage) -> bytes:
    return dumps(
        {
            "opp": opp,
            "table": change.table,
            "op": change.op,
            "id": change.row_id,
            "fields": change.fields,
            "unavailable": sorted(change.unavailable),
            "lsn": change.position.lsn,
            "ts_ms": change.position.ts_ms,
            **(
                {"commit": change.position.commit, "seq": change.position.seq}
                if change.position.commit is not None
                else {}
            ),
            "snapshot": change.snapshot,
            **({} if change.full else {"partial": True}),
            **({"by_integration": True} if change.by_integration else {}),
            "lineage": [lineage.topic, lineage.partition, lineage.offset, lineage.schema_id, lineage.source_ts_ms],
        }
    )


def gap(opp: str, record_id: str, position: Position, lineage: Lineage) -> bytes:
    """A Salesforce gap in one of the deal's records (app/domain/orders/resync.py)."""
    p = position
    return dumps(
        {
            "opp": opp,
            "gap": {"id": record_id, "lsn": p.lsn, "ts_ms": p.ts_ms, "commit": p.commit, "seq": p.seq},
            "lineage": [lineage.topic, lineage.partition, lineage.offset, lineage.schema_id, lineage.source_ts_ms],
        }
    )


def barrier(position: Position) -> bytes:
    """A Salesforce overflow of an entity on the reference topic (``resync:<table>``): every worker holds it."""
    p = position
    return dumps({"lsn": p.lsn, "ts_ms": p.ts_ms, "commit": p.commit, "seq": p.seq, "deleted": False, "fields": {}})


def recheck(opp: str) -> bytes:
    return orjson.dumps({"opp": opp, "recheck": True})


def erp_event(event: ErpEvent) -> bytes:
    lin = event.lineage
    return dumps(
        {
            "opp": event.correlation_id,
            "erp": {
                "event_id": event.event_id,
                "command_id": event.command_id,
                "order_number": event.order_number,
                "occurred_at_ms": event.occurred_at_ms,
                "kind": event.kind,
                "body": event.body,
            },
            "lineage": [lin.topic, lin.partition, lin.offset, lin.schema_id, lin.source_ts_ms],
        }
    )


def parse_deal_change(value: bytes, topic: str, delivery: str) -> DealChange | ErpEvent | RenewalSeen | SourceGap:
    """Read a deal-changes message; ``delivery`` is the coordinates it was read at."""
    m = orjson.loads(value)
    if "gap" in m:
        g = m["gap"]
        position = Position(g["lsn"], g["ts_ms"], g["commit"], g["seq"])
        return SourceGap(m["opp"], g["id"], position, Lineage(*m["lineage"]), delivery)
    if "renewal" in m:
        r = m["renewal"]
        return RenewalSeen(m["opp"], r["id"], r["stage"], Lineage(*m["lineage"]))
    if "erp" in m:
        e = m["erp"]
        return ErpEvent(
            e["event_id"],
            m["opp"],
            e["command_id"],
            e["order_number"],
            e["occurred_at_ms"],
            ErpKind(e["kind"]),
            e["body"],
            Lineage(*m["lineage"]),
        )
    if m.get("recheck"):
        return DealChange(m["opp"], None, Lineage(topic, -1, -1, None, None), delivery)
    change = RowChange(
        m["table"],
        Op(m["op"]),
        m["id"],
        m["fields"],
        frozenset(m["unavailable"]),
        Position(m["lsn"], m["ts_ms"], m.get("commit"), m.get("seq")),
        m["snapshot"],
        not m.get("partial", False),
        m.get("by_integration", False),
    )
    return DealChange(m["opp"], change, Lineage(*m["lineage"]), delivery)


def reference(change: RowChange, fields: dict[str, Any], deleted: bool) -> bytes:
    p = change.position
    salesforce = {"commit": p.commit, "seq": p.seq} if p.commit is not None else {}
    return dumps({"lsn": p.lsn, "ts_ms": p.ts_ms, **salesforce, "deleted": deleted, "fields": fields})


def link(value: CustomerLink) -> bytes:
    """A customer link on the reference topic: ordered by the link's version, not a source position."""
    return dumps({"lsn": None, "ts_ms": value.version, "deleted": False, "fields": value.model_dump(mode="json")})
