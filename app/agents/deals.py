"""The deal agent: assembles each opportunity from its header and lines and turns closed-won deals
into ERP sales-order commands (``app.domain.orders.decide`` holds every rule).

Per message: load the deal, decide, *prepare* every output (contract validation, registry ids,
encoding), then write the deal and send. A failure before the write leaves the state untouched,
so the retry is clean; a crash after it is covered by ``decide``'s redelivery rule.

A timer re-checks parked deals: when the reference data they wait for has arrived, it sends a
re-check message through the deal topic (tables are written only from the agent's own stream).
"""

from __future__ import annotations

import datetime as dt
import logging
import time

import orjson

from app.agents import outputs
from app.agents.guard import guarded
from app.cdc import messages
from app.domain.deal import DealState
from app.domain.errors import ReasonCode
from app.domain.orders import DealChange, Outcome, decide
from app.faust_app import app, settings
from app.ops import metrics
from app.runtime import runtime
from app.state.tables import deals, parked

log = logging.getLogger(__name__)

deal_changes = outputs.topic("sync.deal-changes")
_DEPENDENCIES = {
    ReasonCode.UNKNOWN_ACCOUNT,
    ReasonCode.CUSTOMER_NOT_LINKED,
    ReasonCode.UNKNOWN_PRODUCT,
    ReasonCode.MISSING_PRICE_BOOK_ENTRY,
}


async def handle(event) -> None:
    msg = event.message
    change = messages.parse_deal_change(event.value, msg.topic, f"{msg.topic}/{msg.partition}/{msg.offset}")
    key = event.key
    raw = deals.get(key)
    state = DealState.model_validate_json(raw) if raw else None
    decision = decide(state, change, runtime.references, runtime.policy, dt.datetime.now(dt.UTC))
    ready = await outputs.prepare(decision.outputs)
    deals[key] = decision.state.model_dump_json().encode()
    if decision.state.parked:
        parked[key] = _waiting_for(decision.state)
    elif key in parked:
        del parked[key]
    await outputs.send(ready)
    _observe(decision, change)


def _waiting_for(state: DealState) -> bytes:
    header = state.header
    grace_ends = state.failing_since + runtime.policy.grace if state.failing_since else None
    if grace_ends is not None and grace_ends <= dt.datetime.now(dt.UTC):
        grace_ends = None  # exceptions are raised: from now on it waits for its dependencies
    return orjson.dumps(
        {
            "account_id": header.account_id if header else None,
            "products": sorted({ln.product_id for ln in state.lines.values() if ln.product_id}),
            "currency": header.currency if header else None,
            "reasons": sorted(state.open_exceptions),
            "grace_ends_ms": int(grace_ends.timestamp() * 1000) if grace_ends else None,
        }
    )


def _observe(decision, change: DealChange) -> None:
    metrics.flow_events.labels(flow="opportunity_to_order", outcome=decision.outcome).inc()
    for out in decision.outputs:
        if out.topic == "erp.commands.sales-order" and decision.outcome is not Outcome.REDELIVERED:
            kind = out.value["command"]["-type"].rsplit(".", 1)[1]
            metrics.commands_emitted.labels(type=kind).inc()
            if change.lineage.source_ts_ms:
                latency = time.time() - change.lineage.source_ts_ms / 1000
                metrics.source_to_command_seconds.labels(flow="opportunity_to_order").observe(max(latency, 0))
        elif out.topic == "sync.exceptions":
            metrics.exceptions_raised.labels(reason=out.value["reason_code"]).inc()


@app.agent(deal_changes)
async def assemble_deals(stream):
    await runtime.references_ready()
    dead_letter = outputs.topic("sync.dead-letter")
    async for event in stream.events():
        await guarded(dead_letter, event, lambda event=event: handle(event))


def _missing(waiting: dict) -> set[str]:
    """The dependencies a parked deal still lacks, judged from the reference data held now."""
    refs, missing = runtime.references, set()
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


def _changed(waiting: dict) -> bool:
    """Re-check when the grace period is over, or what the deal waits for has changed."""
    if waiting.get("grace_ends_ms"):
        return time.time() * 1000 >= waiting["grace_ends_ms"]
    recorded = {r for r in waiting.get("reasons", []) if r in _DEPENDENCIES}
    return _missing(waiting) != recorded


@app.timer(interval=settings.park_recheck_s)
async def recheck_parked() -> None:
    """Re-check parked deals whose dependencies changed (never raises: a timer error kills the worker)."""
    if app.rebalancing or not runtime.references.ready.is_set():
        return
    try:
        due = [key for key, value in list(parked.items()) if _changed(orjson.loads(value))]
        for key in due:
            await deal_changes.send(key=key, value=messages.recheck(key.decode()))
    except Exception:
        log.exception("re-checking parked deals failed; will try again")
