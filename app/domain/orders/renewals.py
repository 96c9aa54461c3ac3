"""Renewals: a won deal with a contract term expects its renewal before the term ends.

The term runs from the close date for ``contract_term_months``. ``Policy.renewal_lead`` before it
ends, the CRM is asked to create the renewal opportunity (``RenewalRequest``, one per contract and
term: its command id and the new opportunity's id derive from the deal and the term's end). When
the term has ended and no renewal opportunity is open or won, the parity rules raise
``RENEWAL_MISSING`` (app/domain/parity/rules.py). An amend of the term (close date, months) moves
the expectation, and a new term is asked for again; a cancelled order takes the expectation away.

A renewal opportunity names the contract it renews (``renewal_of``). It lives under its own key, so
its deal step tells the renewed deal through the deal topic (``RenewalNotice``, keyed by the renewed
opportunity), and that deal records it in ``DealState.renewals``. No Faust, no I/O.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass

from app.domain.changes import Lineage
from app.domain.envelope import command_envelope
from app.domain.orders.deal import DealState, Header, Renewal
from app.domain.orders.validation import Policy
from app.domain.outputs import Output, RenewalNotice, RenewalRequest

LOST, DELETED = "CLOSED_LOST", "DELETED"


@dataclass(frozen=True, slots=True)
class RenewalSeen:
    """What a renewal opportunity's step told the deal it renews (read from the deal topic)."""

    opportunity_id: str  # the renewed deal (the message key)
    renewal_id: str
    stage: str  # the renewal's stage, or DELETED
    lineage: Lineage


def add_months(day: dt.date, months: int) -> dt.date:
    """``day`` moved by ``months`` calendar months (the 31st becomes the month's last day)."""
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def live(state: DealState) -> bool:
    """A renewal opportunity of the deal is open or won (not lost, not deleted)."""
    return any(stage not in (LOST, DELETED) for stage in state.renewals.values())


def expect(state: DealState, policy: Policy) -> None:
    """Set the renewal the deal's order and term call for (None: no order, or no term)."""
    header = state.header
    won = header is not None and header.stage == policy.closed_won_stage and not header.deleted
    if state.order is None or not won or header is None or not header.close_date or not header.contract_term_months:
        state.renewal = None
        return
    start, months = header.close_date, header.contract_term_months
    try:  # a term or request time outside the calendar: a typo the close date's validation reports
        end = add_months(start, months)
        _midnight(end) - policy.renewal_lead
    except (OverflowError, ValueError):
        end = None
    if end is None or months <= 0:
        state.renewal = None
    elif state.renewal is None or (state.renewal.term_start, state.renewal.term_end) != (start, end):
        state.renewal = Renewal(term_start=start, term_end=end, months=months)


def due_at(state: DealState, policy: Policy) -> dt.datetime | None:
    """When the deal must be looked at for its renewal without a new event: the request's due time,
    then the end of the term (where a missing renewal is drift)."""
    r = state.renewal
    if r is None or live(state):
        return None
    if r.requested is None:
        return _midnight(r.term_end) - policy.renewal_lead
    return _midnight(r.term_end)


def requests(state: DealState, policy: Policy, lineage: Lineage, now: dt.datetime) -> list[Output]:
    """The renewal request, once its time has come and no renewal exists yet."""
    r, header = state.renewal, state.header
    if r is None or header is None or r.requested is not None or live(state):
        return []
    if now < _midnight(r.term_end) - policy.renewal_lead:
        return []
    opp = state.opportunity_id
    command_id = f"{opp}:renewal:{r.term_end.isoformat()}"
    r.requested = command_id
    value = {
        "envelope": command_envelope(command_id, opp, [], lineage, None, now),
        "opportunity_id": opp,
        "renewal_opportunity_id": f"{opp}-renewal-{r.term_end:%Y%m%d}",
        "account_id": header.account_id,
        "name": f"Renewal: {header.name or opp}"[:255],
        "term_start": r.term_start.isoformat(),
        "term_end": r.term_end.isoformat(),
        "contract_term_months": r.months,
        "amount": None if header.amount is None else str(header.amount),
        "currency": header.currency,
    }
    return [RenewalRequest(opp, value)]


def notice(before: Header | None, after: Header | None, opp: str, lineage: Lineage) -> list[Output]:
    """A renewal opportunity whose link or stage changed tells the deal it renews."""
    if after is None or after.renewal_of is None or after.renewal_of == opp:
        return []
    stage = DELETED if after.deleted else after.stage
    if before is not None and (before.renewal_of, DELETED if before.deleted else before.stage) == (
        after.renewal_of,
        stage,
    ):
        return []
    where = [lineage.topic, lineage.partition, lineage.offset, lineage.schema_id, lineage.source_ts_ms]
    value = {"opp": after.renewal_of, "renewal": {"id": opp, "stage": stage}, "lineage": where}
    return [RenewalNotice(after.renewal_of, value)]


def seen(state: DealState, item: RenewalSeen) -> bool:
    """Record what the renewal opportunity told; False when it told nothing new."""
    if state.renewals.get(item.renewal_id) == item.stage:
        return False
    state.renewals[item.renewal_id] = item.stage
    return True


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), dt.UTC)
