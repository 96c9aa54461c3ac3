"""The service's decisions without Kafka: simulator output through the functions the agents call.

``Service`` takes CRM messages as the CRM simulator plans them (encoded to the wire and decoded
again, as the ingest agent reads them) and ERP events as the ERP simulator emits them (Avro round
trip, then the JSON of ``sync.deal-changes``, as the ERP ingest and deal agents pass them on), and
applies ``normalise`` → reference store / ``decide`` and ``on_erp_event`` in arrival order. Every
output is checked against its contract, as the agents' encoder would.
"""

from __future__ import annotations

import datetime as dt
import io
from collections import defaultdict
from functools import cache
from typing import Any

import fastavro

from app.agents.erp_ingest import MILESTONE_EVENT, MILESTONE_EVENTS_TOPIC, milestone_event
from app.cdc import messages
from app.cdc.envelope import normalise
from app.contracts import default_index
from app.domain.changes import Lineage, Op
from app.domain.feedback.fold import on_erp_event
from app.domain.feedback.lifecycle import ErpEvent, ErpKind
from app.domain.orders.deal import DealState
from app.domain.orders.decide import DealChange, decide, on_renewal
from app.domain.orders.references import Account
from app.domain.orders.renewals import RenewalSeen
from app.domain.orders.validation import Policy
from app.domain.outputs import Output, RenewalNotice
from app.engine.reference_store import ReferenceStore
from app.engine.routes import record, route
from app.serde import wire
from app.sim import crm
from tests.support.erp import contract_problems

ERP_EVENT = "io.crmerpsync.erp.events.ErpOrderEvent"


@cache
def schema(contract: str) -> Any:
    return fastavro.parse_schema(default_index().expanded(contract))


def avro_roundtrip(contract: str, record: dict[str, Any]) -> dict[str, Any]:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema(contract), record)
    buf.seek(0)
    return fastavro.schemaless_reader(buf, schema(contract), None, return_record_name=True,
                                      return_record_name_override=True)  # fmt: skip


def erp_event(record: dict[str, Any], offset: int) -> ErpEvent:
    """An ERP order or milestone event record as the deal agent sees it: Avro round trip, as in
    erp_ingest, then the JSON hop."""
    if "milestone" in record:
        v = avro_roundtrip(MILESTONE_EVENT, record)
        occurred = int(v["occurred_at"].timestamp() * 1000)
        event = milestone_event(v, Lineage(MILESTONE_EVENTS_TOPIC, 0, offset, 1, occurred))
    else:
        v = avro_roundtrip(ERP_EVENT, record)
        name, body = v["event"]
        occurred = int(v["occurred_at"].timestamp() * 1000)
        event = ErpEvent(v["event_id"], v["correlation_id"], v["command_id"], v["order_number"], occurred,
                         ErpKind(name.rsplit(".", 1)[1]), body,
                         Lineage("erp.events.sales-order", 0, offset, 1, occurred))  # fmt: skip
    parsed = messages.parse_deal_change(messages.erp_event(event), "sync.deal-changes", f"erp/{offset}")
    assert isinstance(parsed, ErpEvent)
    return parsed


class Service:
    def __init__(self, policy: Policy | None = None) -> None:
        self.policy = policy or Policy()
        self.refs = ReferenceStore()
        self.states: dict[str, str] = {}  # deal state JSON, parsed fresh per decision as the agent does
        self.outputs: list[Output] = []
        self.by_deal: dict[str, list[Output]] = defaultdict(list)
        self.offset = 0
        self.line_opp: dict[str, str] = {}

    # --- CRM side -------------------------------------------------------------------
    def crm(self, planned: crm.Planned, now: dt.datetime) -> None:
        if planned.kind is crm.Kind.MALFORMED or planned.table == "contact":
            return  # quarantined by the ingest agent (contacts: no mapping, orders do not need them)
        self.offset += 1
        raw = crm.wire_value(planned, 1)
        value = None
        if raw is not None:
            _, body = wire.split(raw)
            value = fastavro.schemaless_reader(io.BytesIO(body), schema(crm.value_contract(planned.table)), None)
        change = normalise(planned.table, value, planned.key, schema(crm.value_contract(planned.table)))
        if change is None:
            return
        table = change.table
        if table in ("opportunity", "opportunity_line_item"):
            opp = change.row_id
            if table == "opportunity_line_item":
                opp = change.fields.get("opportunity_id") or self.line_opp[change.row_id]
                self.line_opp[change.row_id] = opp
            lineage = Lineage(planned.topic, 0, self.offset, 1, change.position.ts_ms)
            self._decide(opp, DealChange(opp, change, lineage, f"deal/{self.offset}"), now)
        elif table == "account":
            fields = {} if change.op is Op.DELETE else Account.model_validate(change.fields).model_dump(mode="json")
            self.refs.apply(f"account:{change.row_id}", messages.reference(change, fields, change.op is Op.DELETE))
        elif table == "product":
            self.refs.apply(f"product:{change.row_id}", messages.reference(change, change.fields, False))
        elif table == "pricebook_entry":
            f = change.fields
            key = f"price:{f['product_id']}|{f['currency']}"
            self.refs.apply(key, messages.reference(change, {"list_price": f["list_price"]}, False))

    def recheck(self, opp: str, now: dt.datetime) -> None:
        self.offset += 1
        self._decide(opp, DealChange(opp, None, Lineage("sync.deal-changes", 0, self.offset, None, None),
                                     f"deal/{self.offset}"), now)  # fmt: skip

    def _decide(self, opp: str, event: DealChange, now: dt.datetime) -> None:
        raw = self.states.get(opp)
        decision = decide(DealState.model_validate_json(raw) if raw else None, event, self.refs, self.policy, now)
        self._record(opp, decision, now)

    def _record(self, opp: str, decision, now: dt.datetime) -> None:
        problems = contract_problems(decision.outputs)
        assert not problems, problems
        self.states[opp] = decision.state.model_dump_json()
        self.outputs += decision.outputs
        self.by_deal[opp] += decision.outputs
        for notice in [o for o in decision.outputs if isinstance(o, RenewalNotice)]:  # through the deal topic
            self.offset += 1
            seen = messages.parse_deal_change(messages.dumps(notice.value), "sync.deal-changes", f"deal/{self.offset}")
            assert isinstance(seen, RenewalSeen)
            if notice.key in self.states:  # a deal the worker holds (else: nothing kept, as in the flow step)
                self._record(notice.key, on_renewal(self.state(notice.key), seen, self.policy, now), now)

    # --- ERP side ---------------------------------------------------------------------
    def erp(self, record: dict[str, Any], now: dt.datetime) -> None:
        self.offset += 1
        event = erp_event(record, self.offset)
        opp = event.correlation_id
        raw = self.states.get(opp)
        state = DealState.model_validate_json(raw) if raw else None
        self._record(opp, on_erp_event(state, event, f"deal/{self.offset}", self.policy, now, self.refs), now)

    # --- reading ---------------------------------------------------------------------
    def state(self, opp: str) -> DealState | None:
        raw = self.states.get(opp)
        return DealState.model_validate_json(raw) if raw else None

    def commands(self, opp: str | None = None) -> list[dict[str, Any]]:
        outs = self.by_deal[opp] if opp else self.outputs
        return [record(o) for o in outs if route(o).topic == "erp.commands.sales-order"]

    def command_ids(self, opp: str, kind: str) -> set[str]:
        return {c["envelope"]["command_id"] for c in self.commands(opp) if c["command"]["-type"].endswith(kind)}

    def alerts(self, opp: str | None = None) -> list[dict[str, Any]]:
        outs = self.by_deal[opp] if opp else self.outputs
        return [record(o) for o in outs if route(o).topic == "sync.drift-alerts"]

    def records(self, topic: str) -> list[dict[str, Any]]:
        return [record(o) for o in self.outputs if route(o).topic == topic]

    def updates(self, opp: str) -> list[dict[str, Any]]:
        return [record(o) for o in self.by_deal[opp] if route(o).topic == "crm.commands.update"]

    def exceptions(self, opp: str) -> list[dict[str, Any]]:
        return [record(o) for o in self.by_deal[opp] if route(o).topic == "sync.exceptions"]
