"""Holes in a deal's state, and what fills them (a source that can lose changes: Salesforce CDC).

A Debezium change carries the whole row. A Salesforce update carries only what changed, and
Salesforce sometimes sends a gap event (a change without its fields) or an overflow (an unknown
set of an entity's records changed). The deal then has a *hole*: a record whose state the service
cannot know until a full image of it (a create, an undelete, a delete, or the answer to a resync
request) newer than the lost change arrives. A deal with a hole is not ordered or amended: it waits
with an ``AWAITING_RESYNC`` exception (a parking reason, resolved when the image arrives).

Three ways to a hole, one rule to fill it:
- a gap event names the record: ``DealState.resync[record] = gap position``;
- a partial update of a record never seen whole: the same, at the update's position, and the deal
  asks for the record itself (``ResyncRequest``, once);
- an overflow of the entity (``References.resync_barrier``): every record of it whose last full
  image is not newer than the overflow.

``DealState.full_pos`` keeps a record's last full image while partial updates have applied after it
(absent: the last applied change was full, ``header_pos``/``line_pos`` is it), so Debezium deals
store nothing more.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from app.domain.changes import Lineage, Position, RowChange
from app.domain.envelope import command_envelope
from app.domain.errors import ReasonCode
from app.domain.orders.deal import DealState, Pos
from app.domain.orders.references import References
from app.domain.orders.validation import Failure
from app.domain.outputs import Output, ResyncRequest


@dataclass(frozen=True, slots=True)
class SourceGap:
    """A change of one of the deal's records the source could not send (a Salesforce gap event)."""

    opportunity_id: str
    record_id: str
    position: Position
    lineage: Lineage
    delivery: str  # coordinates of the message that carried it to the deal


NEVER = Pos(lsn=None, ts_ms=-1)  # a record no full image of has been seen
ENTITIES = {"opportunity": "Opportunity", "opportunity_line_item": "OpportunityLineItem"}


def applied(
    state: DealState, change: RowChange, before: Pos | None, lineage: Lineage, now: dt.datetime
) -> list[Output]:
    """Book-keeping after ``change`` (of a record whose last applied position was ``before``): a full
    image fills the record's hole; a partial update remembers the last full image, and of a record
    never seen whole opens a hole and asks for the record."""
    rid = change.row_id
    if change.full:
        state.full_pos.pop(rid, None)
        gap = state.resync.get(rid)
        if gap is not None and change.position.after(gap.position()):
            del state.resync[rid]
        return []
    if rid not in state.full_pos:
        state.full_pos[rid] = before if before is not None else NEVER
    if state.full_pos[rid] != NEVER or rid in state.resync:
        return []
    state.resync[rid] = Pos.of(change.position)
    return [request(ENTITIES.get(change.table, change.table), [rid], "PARTIAL_WITHOUT_IMAGE", change.position,
                    None, state.opportunity_id, lineage, now)]  # fmt: skip


def gap(state: DealState, record_id: str, position: Position) -> bool:
    """A gap event for one of the deal's records: True when it opened a hole (not a redelivery, not
    older than a full image the deal already has)."""
    if record_id in state.resync and not position.after(state.resync[record_id].position()):
        return False
    last = last_full(state, record_id)
    if last is not None and last != NEVER and last.position().after(position):
        return False  # the record's full image is newer than the lost change already
    state.resync[record_id] = Pos.of(position)
    return True


def last_full(state: DealState, record_id: str) -> Pos | None:
    """The record's last full image (None: the deal has never seen the record)."""
    if record_id in state.full_pos:
        return state.full_pos[record_id]
    if record_id == state.opportunity_id:
        return state.header_pos
    return state.line_pos.get(record_id)


def holes(state: DealState, barrier: dict[str, Position | None]) -> list[str]:
    """The deal's records whose state has a hole, sorted; ``barrier``: each table's newest overflow."""
    found = set(state.resync)
    if not any(barrier.values()):  # no overflow ever: the usual case, and every Debezium deal's
        return sorted(found)
    records = [("opportunity", state.opportunity_id)] if state.header is not None else []
    records += [("opportunity_line_item", line_id) for line_id in state.lines]
    for table, rid in records:
        over = barrier.get(table)
        if over is None:
            continue
        last = last_full(state, rid)
        if last is None or last == NEVER or not last.position().after(over):
            found.add(rid)
    return sorted(found)


def failures(state: DealState, refs: References) -> list[Failure]:
    """``AWAITING_RESYNC`` when the deal has a hole (a validation failure like any other: it parks)."""
    found = holes(state, {table: refs.resync_barrier(table) for table in ENTITIES})
    if not found:
        return []
    shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
    why = f"the CRM source lost changes of {shown}: waiting for their full state (crm.commands.resync)"
    return [Failure(ReasonCode.AWAITING_RESYNC, why)]


def request(entity: str, record_ids: list[str], reason: str, position: Position, transaction_key: str | None,
            correlation: str, lineage: Lineage, now: dt.datetime) -> ResyncRequest:  # fmt: skip
    """The resync request for ``record_ids`` of ``entity`` (none: all of it): one id per lost change."""
    ids = ",".join(record_ids) or "*"
    command_id = f"resync:{entity}:{ids}:{position.label()}"[:500]
    value = {
        "envelope": command_envelope(command_id, correlation, [lineage.coordinates], lineage, position.label(), now),
        "entity": entity,
        "record_ids": record_ids,
        "reason": reason,
        "gap_commit_timestamp": dt.datetime.fromtimestamp(position.ts_ms / 1000, dt.UTC).isoformat(),
        "transaction_key": transaction_key,
    }
    return ResyncRequest(entity, value)
