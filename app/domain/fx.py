"""Currency conversion for thresholds: amounts in different currencies compared in one base currency.

An escalation rule's ``min_amount_at_risk`` is a number in the table's base currency; an amount at
risk is converted before it is compared, so 60 000 JPY is not "more" than 50 000 EUR. The table
is data (``app/rules/fx-rates.toml``, ``CRM_ERP_FX_RATES``): a treasury export or a daily job
rewrites it, and the worker reads it again when it changes (``RateFile``), no restart. No Faust.
"""

from __future__ import annotations

import logging
import os
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Rates:
    """``rates[c]``: the value of one unit of currency ``c`` in ``base``."""

    base: str
    rates: dict[str, Decimal] = field(default_factory=dict)
    as_of: str | None = None

    def to_base(self, amount: Decimal, currency: str | None) -> Decimal | None:
        """``amount`` in the base currency; None when the currency is not in the table."""
        if currency is None:
            return None
        if currency == self.base:
            return amount
        rate = self.rates.get(currency)
        return None if rate is None else amount * rate


def load(path: Path) -> Rates:
    data = tomllib.loads(path.read_text())
    base = data.get("base")
    if not isinstance(base, str) or len(base) != 3:
        raise ValueError(f"{path}: `base` must be an ISO 4217 code")
    rates = {}
    for code, value in data.get("rates", {}).items():
        rate = Decimal(str(value))
        if len(code) != 3 or rate <= 0:
            raise ValueError(f"{path}: rate {code} = {value}: needs a 3-letter code and a positive rate")
        rates[code] = rate
    return Rates(base, rates, str(data["as_of"]) if "as_of" in data else None)


class RateFile:
    """The rate table, read again when its file changes; a file that does not parse keeps the last
    good table (and says so in the log), so a half-written export never stops escalations."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._rates = load(path)
        self._stamp = self._stat()

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def current(self) -> Rates:
        stamp = self._stat()
        if stamp is not None and stamp != self._stamp:
            try:
                self._rates = load(self.path)
                log.info("FX rates reloaded from %s (as of %s)", self.path, self._rates.as_of)
            except (OSError, ValueError, tomllib.TOMLDecodeError) as exc:
                log.error("FX rates in %s do not parse, keeping the previous table: %s", self.path, exc)
            self._stamp = stamp
        return self._rates
