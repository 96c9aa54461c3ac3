"""When a deal's state may go: settled, quiet for the retention period, and safe to forget.

A deal is settled when nothing about it can still need the service: lost or deleted in the CRM
(any order it had was cancelled), or paid in full by the ERP, or only lines with no header (a
line change that arrived after its deal retired); and no exception, drift alert or park is open
on it, and a contract term it has is renewed (app/domain/orders/renewals.py). Once settled for
``Policy.retention`` with no change, its rows are tombstoned (state, indexes, parity
contributions), so state is bounded by the deals still in flight plus those settled within the
period. The row index of the CDC ingest (line -> deal) is told to drop the deal's lines through
``sync.row-index``.

Forgetting a closed-won deal must not let a later re-read of its rows (a connector's re-snapshot,
a replay) order it again: such a read finds no state and would look like a new close. So a won
deal is kept until its close date is also past ``Policy.close_date_window``, beyond which
validation refuses a close (CLOSE_DATE_OUT_OF_RANGE) instead of ordering it. Lost and deleted
deals have no order to repeat. No Faust, no I/O.
"""

from __future__ import annotations

import datetime as dt

from app.domain.orders import renewals
from app.domain.orders.deal import DealState
from app.domain.orders.validation import Policy
from app.domain.outputs import Output, RowRelease

LOST_STAGE = "CLOSED_LOST"


def settled(state: DealState, policy: Policy) -> bool:
    header = state.header
    if state.open_exceptions or state.alerts or state.owner_alerts.open or state.parked:
        return False
    if state.renewal is not None and not renewals.live(state):  # kept to watch for its renewal
        return False
    if header is None:  # lines only: late lines of a retired deal, or lines of a deal never seen
        return state.order is None
    if header.deleted or header.stage == LOST_STAGE:
        return state.order is None
    if header.stage != policy.closed_won_stage or state.order is None or state.erp is None:
        return False
    erp, amount = state.erp, state.order.amount or 0
    return erp.invoiced > 0 and erp.invoiced >= amount and erp.paid >= erp.invoiced


def mark(state: DealState, policy: Policy, now: dt.datetime, changed: bool) -> None:
    """Record since when the deal is settled: an applied change restarts the period, a re-check
    does not; an unsettled deal has none."""
    if not settled(state, policy):
        state.settled_at = None
    elif changed or state.settled_at is None:
        state.settled_at = now


def forget_at(state: DealState, policy: Policy) -> dt.datetime | None:
    """When the deal's rows may be tombstoned (None: not settled)."""
    if state.settled_at is None:
        return None
    at = state.settled_at + policy.retention
    header = state.header
    won = header is not None and header.stage == policy.closed_won_stage and not header.deleted
    if won and header is not None and header.close_date is not None:
        safe = dt.datetime.combine(header.close_date + policy.close_date_window, dt.time(), dt.UTC)
        at = max(at, safe + dt.timedelta(days=1))
    return at


def due(state: DealState, policy: Policy, now: dt.datetime) -> bool:
    at = forget_at(state, policy)
    return at is not None and now >= at


def row_index_outputs(state: DealState) -> list[Output]:
    """For each line the deal had, a request to drop it from the CDC ingest's row index. The index
    lives in the partitions of the CDC line topic, so each request goes to the partition the line's
    rows were read from (``sync.row-index`` is read by the ingest agent beside the CDC topics)."""
    return [
        RowRelease(
            f"line:{line_id}",
            {"forget": f"line:{line_id}", "opp": state.opportunity_id},
            partition=partition,
        )
        for line_id, partition in sorted(state.line_partitions.items())
    ]
