"""The deal agent: assembles each opportunity from its header and lines and turns closed-won deals
into ERP sales-order commands (``app.domain.orders.decide.decide`` holds every rule).

Per message the engine's keyed runner (app/engine/keyed.py) runs the deal flow's step
(app/flows/deals.py): load the deal, decide, encode every output, store the state with its outputs
in the outbox, send. A failure before the store leaves the state untouched, so the retry is clean;
a redelivery after a crash re-sends the stored outputs.

A timer re-checks parked deals: when the reference data they wait for has arrived, it sends a
re-check message through the deal topic (tables are written only from the agent's own stream).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import TYPE_CHECKING

import orjson

from app.cdc import messages
from app.domain.errors import ReasonCode
from app.domain.feedback.kpis import BillingCheck, CycleTime, DealClosed
from app.domain.feedback.lifecycle import ErpEvent
from app.domain.orders.deal import source_ts_ms
from app.domain.orders.decide import Outcome
from app.domain.outputs import CrmUpdate, DriftAlert, ExceptionRaised, SalesOrderCommand
from app.engine import routes
from app.engine.keyed import Input
from app.flows import deals as flow
from app.observe import metrics

if TYPE_CHECKING:
    from app.domain.orders.references import References
    from app.engine.bootstrap import Engine

log = logging.getLogger(__name__)

REDELIVERED = "redelivered"  # the outcome of an input already stepped: its stored outputs re-sent
_DEPENDENCIES = {
    ReasonCode.UNKNOWN_ACCOUNT,
    ReasonCode.CUSTOMER_NOT_LINKED,
    ReasonCode.UNKNOWN_PRODUCT,
    ReasonCode.MISSING_PRICE_BOOK_ENTRY,
}


def _observe(decision, item) -> None:
    flow = "erp_feedback" if isinstance(item, ErpEvent) else "opportunity_to_order"
    metrics.flow_events.labels(flow=flow, outcome=decision.outcome).inc()
    for measure in decision.measures:
        match measure:
            case CycleTime(cycle=cycle, seconds=seconds):
                metrics.lifecycle_cycle_seconds.labels(cycle=str(cycle)).observe(seconds)
            case BillingCheck(accurate=accurate):
                metrics.orders_invoiced.labels(accurate=str(accurate).lower()).inc()
            case DealClosed():
                metrics.deals_closed_won.inc()
    if decision.outcome is Outcome.DUPLICATE:
        metrics.dedup_hits.labels(flow=flow).inc()
    for out in decision.outputs:
        if isinstance(out, (SalesOrderCommand, CrmUpdate)):
            name = out.action if isinstance(out, SalesOrderCommand) else routes.route(out).contract
            kind = name.rsplit(".", 1)[1]  # the record's name: CreateSalesOrder, …, CrmUpdateCommand
            metrics.commands_emitted.labels(type=kind).inc()
            command_id = out.value["envelope"]["command_id"]
            log.info("sent %s %s", kind, command_id, extra={"command_id": command_id})
            source_ts = source_ts_ms(decision.state, item.lineage.source_ts_ms)
            if isinstance(out, SalesOrderCommand) and source_ts and not isinstance(item, ErpEvent):
                latency = time.time() - source_ts / 1000
                metrics.source_to_command_seconds.labels(flow=flow).observe(max(latency, 0))
        elif isinstance(out, ExceptionRaised):
            v = out.value
            metrics.exceptions_raised.labels(reason=v["reason_code"]).inc()
            extra = {"reason_code": v["reason_code"], "exception_id": v["exception_id"]}
            log.warning("exception %s %s: %s", v["reason_code"], v["exception_id"], v["detail"], extra=extra)
        elif isinstance(out, DriftAlert):
            v = out.value
            metrics.drift_alerts.labels(kind=v["kind"], state=v["state"]).inc()
            log.warning("drift alert %s %s %s: %s", v["state"], v["kind"], v["alert_id"], v["detail"])


def _missing(waiting: dict, refs: References) -> set[str]:
    """The dependencies a parked deal still lacks, judged from the reference data held now."""
    missing = set()
    account = refs.account(waiting["account_id"]) if waiting.get("account_id") else None
    if account is None:
        missing.add(ReasonCode.UNKNOWN_ACCOUNT)
    elif not account.erp_customer_number:
        missing.add(ReasonCode.CUSTOMER_NOT_LINKED)
    for product_id in waiting.get("products", []):
        if refs.product(product_id) is None:
            missing.add(ReasonCode.UNKNOWN_PRODUCT)
        elif waiting.get("currency") and refs.list_price(product_id, waiting["currency"]) is None:
            missing.add(ReasonCode.MISSING_PRICE_BOOK_ENTRY)
    return missing


def _changed(waiting: dict, refs: References) -> bool:
    """Re-check when the grace period is over, or what the deal waits for has changed."""
    if waiting.get("grace_ends_ms"):
        return time.time() * 1000 >= waiting["grace_ends_ms"]
    recorded = {r for r in waiting.get("reasons", []) if r in _DEPENDENCIES}
    return _missing(waiting, refs) != recorded


def register(engine: Engine) -> None:
    """The deal agent, the parked-deal re-check and the SLA sweep, on the engine's app."""
    app, settings, runtime, tables = engine.app, engine.settings, engine.runtime, engine.tables
    deal_changes = engine.outputs.topic("sync.deal-changes")
    flow_tables = {t.name: t for t in (tables.deals, tables.parked, tables.deadlines, tables.open_alerts)}
    runner = engine.outputs.runner("deals", flow_tables, tables.deals)

    async def handle(event) -> None:
        msg = event.message
        delivery = f"{msg.topic}/{msg.partition}/{msg.offset}"
        item = messages.parse_deal_change(event.value, msg.topic, delivery)
        ctx = flow.Context(runtime.references, runtime.policy, dt.datetime.now(dt.UTC))
        done = await runner.run(
            Input(msg.topic, msg.partition, msg.offset, event.key),
            lambda: flow.step(flow_tables, event.key, item, delivery, ctx),
        )
        flow_name = "erp_feedback" if isinstance(item, ErpEvent) else "opportunity_to_order"
        if done is None:
            metrics.flow_events.labels(flow=flow_name, outcome=REDELIVERED).inc()
            metrics.dedup_hits.labels(flow=flow_name).inc()
            return
        _observe(done.info, item)

    @app.agent(deal_changes, name=f"{__name__}.assemble_deals")
    async def assemble_deals(stream):
        await runtime.references_ready()
        async for event in stream.events():
            await engine.guard.guarded(event, lambda event=event: handle(event), lambda event=event: event.key.decode())

    @app.timer(interval=settings.park_recheck_s)
    async def recheck_parked() -> None:
        """Re-check parked deals whose dependencies changed (never raises: a timer error kills the worker)."""
        refs = runtime.references
        if app.rebalancing or not refs.ready.is_set():
            return
        try:
            due = [key for key, value in list(tables.parked.items()) if _changed(orjson.loads(value), refs)]
            for key in due:
                await deal_changes.send(key=key, value=messages.recheck(key.decode()))
        except Exception:
            log.exception("re-checking parked deals failed; will try again")

    sent: dict[bytes, bytes] = {}  # due deadline already turned into a re-check (kept while it is due)

    @app.timer(interval=settings.parity_check_s)
    async def sweep_deadlines() -> None:
        """Re-check deals whose ERP SLA fell due (never raises: a timer error kills the worker)."""
        if app.rebalancing:
            return
        try:
            now_ms = time.time() * 1000
            due = {k: v for k, v in list(tables.deadlines.items()) if int(v) <= now_ms}
            for key in [k for k, v in sent.items() if due.get(k) != v]:
                del sent[key]  # moved or removed by the agent: remembering it would only take memory
            for key, value in due.items():
                if sent.get(key) != value:
                    await deal_changes.send(key=key, value=messages.recheck(key.decode()))
                    sent[key] = value
        except Exception:
            log.exception("sweeping SLA deadlines failed; will try again")
