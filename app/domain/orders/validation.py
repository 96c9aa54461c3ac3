"""Completeness of a closed-won deal before anything is created in the ERP.

Every failed rule is a reason code (severity, owner and SLA come from the taxonomy). Failures of
kind DEPENDENCY_MISSING (account, customer link, product, price not synced yet) park the deal
instead of rejecting it: it completes by itself when the dependency arrives.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from app.domain.errors import ReasonCode as R
from app.domain.feedback.lifecycle import Slas
from app.domain.orders.deal import Address, Header, Line
from app.domain.orders.references import Account, Product, References

# An ERP order line holds unit and list prices as decimal(18,4) (avro/canonical/SalesOrderLine.avsc),
# the CRM as numeric(18,2): a CRM price of 10^14 or more cannot be ordered. Rejected here with a reason
# code, not left to the contract check of the create (which would quarantine the deal's change).
ERP_PRICE_LIMIT = Decimal(10) ** 14
_TOO_LARGE = f"is beyond what an ERP order line holds (less than {ERP_PRICE_LIMIT:,})"


@dataclass(frozen=True, slots=True)
class Policy:
    closed_won_stage: str = "CLOSED_WON"
    amount_tolerance: Decimal = Decimal("0.01")
    max_discount_percent: Decimal = Decimal("30")
    currencies: frozenset[str] = frozenset({"EUR", "USD", "GBP", "CHF", "JPY", "CAD", "AUD", "SEK", "NOK", "DKK"})
    integration_user: str = "005-integration"
    # how long a closed-won deal may stay incomplete before exceptions are raised: lines, accounts and
    # prices arrive on other topics, so a close is often seen a moment before the rest of the deal
    grace: dt.timedelta = dt.timedelta(0)
    slas: Slas = field(default_factory=Slas)  # what the ERP's side of an order is held to (parity)
    retry_tiers: tuple[tuple[str, float], ...] = ()  # (tier, delay s): where retryable ERP rejections go
    # a close date further than this from the day the deal is judged is a typo, not an order date
    close_date_window: dt.timedelta = dt.timedelta(days=366)
    # a settled deal's state is tombstoned after this long without a change (app/domain/orders/retention.py)
    retention: dt.timedelta = dt.timedelta(days=90)
    # how long before a contract term ends the CRM is asked for its renewal opportunity
    renewal_lead: dt.timedelta = dt.timedelta(days=90)
    # ERP-owned opportunity fields whose edit by a CRM user is an ownership conflict (from the
    # contracts), and those of them the service writes back at once (from the ownership rules)
    erp_owned: frozenset[str] = frozenset()
    restore: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Failure:
    reason: R
    detail: str


@dataclass(frozen=True, slots=True)
class Resolved:
    """What the order will be built from, once every rule passes."""

    account: Account
    products: dict[str, Product]
    list_prices: dict[str, Decimal]
    bill_to: Address
    ship_to: Address
    payment_terms: str
    tax_code: str | None
    tax_exempt: bool


def validate(
    header: Header, lines: dict[str, Line], refs: References, policy: Policy, today: dt.date | None = None
) -> tuple[list[Failure], Resolved | None]:
    """All failures of the deal (empty list and a ``Resolved`` when it can become an order).

    ``today``: the day the deal is judged, for the close date's plausibility (None: not checked)."""
    fail: list[Failure] = []
    close = header.close_date
    if today is not None and close is not None and abs(close - today) > policy.close_date_window:
        days = policy.close_date_window.days
        fail.append(Failure(R.CLOSE_DATE_OUT_OF_RANGE, f"close date {close} is more than {days} days from {today}"))
    currency = header.currency
    if not currency:
        fail.append(Failure(R.MISSING_CURRENCY, "the opportunity has no currency"))
    elif currency not in policy.currencies:
        fail.append(Failure(R.UNSUPPORTED_CURRENCY, f"{currency} is not a currency the ERP books"))

    account = refs.account(header.account_id) if header.account_id else None
    if account is None:
        fail.append(Failure(R.UNKNOWN_ACCOUNT, f"account {header.account_id!r} has not been synced"))
    elif not account.erp_customer_number:
        fail.append(Failure(R.CUSTOMER_NOT_LINKED, f"account {header.account_id} has no ERP customer number"))

    if not lines:
        fail.append(Failure(R.NO_LINES, "the opportunity has no line items"))
    products: dict[str, Product] = {}
    prices: dict[str, Decimal] = {}
    line_sum = Decimal(0)
    for line_id, line in sorted(lines.items()):
        bookable = currency if currency in policy.currencies else None  # no price lookup for a rejected currency
        fail += _check_line(line_id, line, bookable, refs, policy, products, prices)
        line_sum += line.total_price or Decimal(0)

    if lines and header.amount is not None and abs(header.amount - line_sum) > policy.amount_tolerance:
        fail.append(Failure(R.AMOUNT_MISMATCH, f"header amount {header.amount} but lines sum to {line_sum}"))
    if header.amount is None:
        fail.append(Failure(R.AMOUNT_MISMATCH, "the opportunity has no amount"))

    payment_terms = header.payment_terms or (account.payment_terms if account else None)
    if not payment_terms:
        fail.append(Failure(R.MISSING_PAYMENT_TERMS, "no payment terms on the deal or the account"))
    if header.billing_schedule in (None, "UNKNOWN"):
        fail.append(Failure(R.MISSING_BILLING_SCHEDULE, f"billing schedule {header.billing_schedule!r}"))
    tax_code = header.tax_code or (account.tax_code if account else None)
    tax_exempt = header.tax_exempt or bool(account and account.tax_exempt)
    if not tax_code and not tax_exempt:
        fail.append(Failure(R.MISSING_TAX_TREATMENT, "neither a tax code nor a tax exemption"))
    bill_to = _address(header.bill_to, account.bill_to if account else None)
    ship_to = _address(header.ship_to, account.ship_to if account else None)
    if bill_to is None:
        fail.append(Failure(R.MISSING_BILL_TO, "no complete bill-to address (street, city, country)"))
    if ship_to is None:
        fail.append(Failure(R.MISSING_SHIP_TO, "no complete ship-to address (street, city, country)"))

    if fail:
        return fail, None
    assert account is not None and bill_to is not None and ship_to is not None and payment_terms
    return [], Resolved(account, products, prices, bill_to, ship_to, payment_terms, tax_code, tax_exempt)


def _address(own: Address | None, fallback: Address | None) -> Address | None:
    for candidate in (own, fallback):
        if candidate is not None and candidate.complete:
            return candidate
    return None


def _check_line(
    line_id: str,
    line: Line,
    currency: str | None,
    refs: References,
    policy: Policy,
    products: dict[str, Product],
    prices: dict[str, Decimal],
) -> list[Failure]:
    fail: list[Failure] = []
    if line.quantity is None or line.quantity <= 0:
        fail.append(Failure(R.INVALID_QUANTITY, f"line {line_id}: quantity {line.quantity}"))
    product = refs.product(line.product_id) if line.product_id else None
    if product is None:
        fail.append(Failure(R.UNKNOWN_PRODUCT, f"line {line_id}: product {line.product_id!r} has not been synced"))
        return fail
    products[line_id] = product
    if not product.erp_item_code:
        fail.append(Failure(R.PRODUCT_NOT_MAPPED, f"line {line_id}: product {product.sku} has no ERP item code"))
    if line.unit_price is None:
        fail.append(Failure(R.PRICE_OUT_OF_POLICY, f"line {line_id}: no unit price"))
        return fail
    if abs(line.unit_price) >= ERP_PRICE_LIMIT:
        fail.append(Failure(R.PRICE_OUT_OF_POLICY, f"line {line_id}: unit price {line.unit_price} {_TOO_LARGE}"))
        return fail
    if line.total_price is None:  # the order line's net amount, and a part of the header's sum
        fail.append(Failure(R.AMOUNT_MISMATCH, f"line {line_id}: no total price"))
    elif line.quantity is not None:
        gross = line.quantity * line.unit_price
        if abs(gross) >= ERP_PRICE_LIMIT:  # and past 28 digits, quantize() itself would raise
            fail.append(Failure(R.PRICE_OUT_OF_POLICY, f"line {line_id}: quantity x unit price {gross} {_TOO_LARGE}"))
            return fail
        expected = gross.quantize(Decimal("0.01"))
        if abs(expected - line.total_price) > policy.amount_tolerance:
            fail.append(Failure(R.AMOUNT_MISMATCH, f"line {line_id}: total {line.total_price}, qty x price {expected}"))
    if currency:
        list_price = refs.list_price(line.product_id or "", currency)
        if list_price is None:
            fail.append(Failure(R.MISSING_PRICE_BOOK_ENTRY, f"line {line_id}: no {currency} price for {product.sku}"))
        elif abs(list_price) >= ERP_PRICE_LIMIT:
            fail.append(Failure(R.PRICE_OUT_OF_POLICY, f"line {line_id}: list price {list_price} {_TOO_LARGE}"))
        else:
            prices[line_id] = list_price
            floor = list_price * (1 - policy.max_discount_percent / 100)
            if line.unit_price < floor:
                fail.append(
                    Failure(
                        R.PRICE_OUT_OF_POLICY,
                        f"line {line_id}: unit price {line.unit_price} below {floor:.2f} "
                        f"({policy.max_discount_percent}% off list {list_price})",
                    )
                )
    return fail
