"""Deals waiting for an account's ERP link see it as soon as the link flow publishes it."""

from __future__ import annotations

from decimal import Decimal

import orjson

from app.cdc import messages
from app.domain.customer_links import CustomerEvent, CustomerEventKind, apply
from app.engine.reference_store import ReferenceStore


def _account(store: ReferenceStore, account_id: str, number: str | None) -> None:
    record = {"lsn": 10, "ts_ms": 1, "deleted": False, "fields": {"name": "ACME", "erp_customer_number": number}}
    store.apply(f"account:{account_id}", orjson.dumps(record))


def _event(kind: CustomerEventKind, event_id: str, at: int) -> CustomerEvent:
    return CustomerEvent(
        event_id=event_id, account_id="acc-u1", kind=kind, customer_number="C-900001",
        credit_limit=Decimal("100000.00"), currency="EUR", occurred_at_ms=at,
    )  # fmt: skip


def test_an_account_without_a_customer_number_takes_its_links_number():
    store = ReferenceStore()
    _account(store, "acc-u1", None)
    assert store.account("acc-u1").erp_customer_number is None
    link = apply(None, _event(CustomerEventKind.CREATED, "e-1", 1_000))
    store.apply("link:acc-u1", messages.link(link))
    assert store.account("acc-u1").erp_customer_number == "C-900001"
    assert store.link("acc-u1").credit_limit == Decimal("100000.00")


def test_the_crms_own_number_wins_and_a_deactivated_link_links_nothing():
    store = ReferenceStore()
    _account(store, "acc-1", "C-10001")
    _account(store, "acc-u1", None)
    link = apply(None, _event(CustomerEventKind.CREATED, "e-1", 1_000))
    gone = apply(link, _event(CustomerEventKind.DEACTIVATED, "e-2", 2_000))
    store.apply("link:acc-1", messages.link(link.model_copy(update={"account_id": "acc-1"})))
    store.apply("link:acc-u1", messages.link(gone))
    assert store.account("acc-1").erp_customer_number == "C-10001"
    assert store.account("acc-u1").erp_customer_number is None


def test_an_older_link_record_does_not_replace_a_newer_one():
    store = ReferenceStore()
    _account(store, "acc-u1", None)
    first = apply(None, _event(CustomerEventKind.CREATED, "e-1", 1_000))
    second = apply(first, _event(CustomerEventKind.DEACTIVATED, "e-2", 2_000))
    store.apply("link:acc-u1", messages.link(second))
    store.apply("link:acc-u1", messages.link(first))  # a replay of the topic out of order
    assert store.link("acc-u1").event_id == "e-2"
