"""Revenue at risk: each deal's amount counted once per currency, however many reasons it is at risk for.

A 250.00 deal with two open exceptions and a drift alert is 250.00 at risk, not 750.00. Per source
(``exceptions``, ``drift_alerts``) a deal counts with its largest open amount; ``total`` counts it
once across both. An item without a deal (a quarantined message) counts as its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

SOURCES = ("exceptions", "drift_alerts")


@dataclass(frozen=True, slots=True)
class AtRisk:
    source: str  # one of SOURCES
    deal: str  # correlation id (or the item's own id when it has no deal)
    currency: str
    amount: Decimal


def revenue_at_risk(items: Iterable[AtRisk]) -> dict[tuple[str, str], Decimal]:
    """(source or "total", currency) → the sum over deals of each deal's largest amount at risk."""
    largest: dict[tuple[str, str, str], Decimal] = {}
    for item in items:
        for source in (item.source, "total"):
            key = (source, item.currency, item.deal)
            largest[key] = max(largest.get(key, Decimal(0)), item.amount)
    out: dict[tuple[str, str], Decimal] = {}
    for (source, currency, _), amount in largest.items():
        out[(source, currency)] = out.get((source, currency), Decimal(0)) + amount
    return out
