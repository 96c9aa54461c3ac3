"""Accounts, products and list prices, replicated whole into every worker.

Deals are partitioned by opportunity, but any deal may need any account or product, so the
reference data cannot live in a partitioned table. The ingest agent publishes it to the compacted
``sync.reference-data`` topic (key ``account:<id>``, ``product:<id>``, ``price:<product>|<currency>``,
and ``link:<account id>``, the account's ERP customer link from the customer link flow);
every worker reads that topic from the beginning on a background thread into memory and keeps
following it. A record older than the one held (by source position) is ignored. ``ready`` is set
once the initial load has reached the end offsets seen at start.

(Faust's GlobalTable would do this, but its documented recovery loop with several workers makes it
the wrong base for a path that must not stall.)
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from decimal import Decimal
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from app.domain.changes import Position
from app.domain.customer_links import CustomerLink
from app.domain.orders.references import Account, Product

log = logging.getLogger(__name__)


class ReferenceStore:
    """The References the domain asks for, answered from memory."""

    def __init__(self) -> None:
        self._accounts: dict[str, Account] = {}
        self._products: dict[str, Product] = {}
        self._prices: dict[str, Decimal] = {}
        self._links: dict[str, CustomerLink] = {}
        self._barriers: dict[str, Position] = {}
        self._positions: dict[str, Position] = {}
        self.ready = threading.Event()
        self.records_applied = 0

    # --- References -----------------------------------------------------------------
    def account(self, account_id: str) -> Account | None:
        """The CRM account, with the ERP customer number of its link when the CRM has none yet (the
        write-back is on its way): a deal waiting for the link goes on as soon as the ERP gives it."""
        account = self._accounts.get(account_id)
        if account is None or account.erp_customer_number:
            return account
        link = self._links.get(account_id)
        if link is None or not link.linked:
            return account
        return account.model_copy(update={"erp_customer_number": link.customer_number})

    def link(self, account_id: str) -> CustomerLink | None:
        """The account's ERP customer link (number, status, credit), None before the ERP gave one."""
        return self._links.get(account_id)

    def product(self, product_id: str) -> Product | None:
        return self._products.get(product_id)

    def resync_barrier(self, table: str) -> Position | None:
        return self._barriers.get(table)

    def list_price(self, product_id: str, currency: str) -> Decimal | None:
        return self._prices.get(f"{product_id}|{currency}")

    # --- feeding ------------------------------------------------------------------------
    def apply(self, key: str, value: bytes | None) -> None:
        """Apply one record of the reference topic (None value: the key was deleted)."""
        kind, _, ident = key.partition(":")
        if value is None:
            self._drop(kind, ident)
            self._positions.pop(key, None)
            return
        record = orjson.loads(value)
        pos = Position(record.get("lsn"), int(record.get("ts_ms") or 0), record.get("commit"), record.get("seq"))
        held = self._positions.get(key)
        if held is not None and not pos.after(held):
            return
        self._positions[key] = pos
        if record.get("deleted"):
            self._drop(kind, ident)
        elif kind == "account":
            self._accounts[ident] = Account.model_validate(record["fields"])
        elif kind == "product":
            self._products[ident] = Product.model_validate(record["fields"])
        elif kind == "price":
            self._prices[ident] = Decimal(record["fields"]["list_price"])
        elif kind == "link":
            self._links[ident] = CustomerLink.model_validate(record["fields"])
        elif kind == "resync":
            self._barriers[ident] = pos
        self.records_applied += 1

    def _drop(self, kind: str, ident: str) -> None:
        tables: dict[str, dict] = {
            "account": self._accounts,
            "product": self._products,
            "price": self._prices,
            "link": self._links,
            "resync": self._barriers,
        }
        tables.get(kind, {}).pop(ident, None)


class ReferenceFollower(threading.Thread):
    """Reads the reference topic from the beginning, forever, into a ReferenceStore."""

    def __init__(self, store: ReferenceStore, connection: dict[str, Any], topic: str) -> None:
        """``connection``: bootstrap servers and security (``app.client_config.kafka_config``)."""
        super().__init__(name="reference-follower", daemon=True)
        self.store, self.topic = store, topic
        self._stop = threading.Event()
        self._conf = {
            **connection,
            "group.id": f"reference-follower-{uuid.uuid4().hex[:8]}",  # never commits: assign, not subscribe
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow()
            except Exception:  # the broker went away: keep what we have, reconnect
                log.exception("reference follower failed; restarting in 2 s")
                time.sleep(2)

    def _follow(self) -> None:
        consumer = Consumer(self._conf)
        try:
            meta = consumer.list_topics(self.topic, timeout=30).topics[self.topic]
            parts = [TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in meta.partitions]
            ends = {p.partition: consumer.get_watermark_offsets(p, timeout=30)[1] for p in parts}
            consumer.assign(parts)
            caught_up = {p for p, end in ends.items() if end == 0}
            while not self._stop.is_set():
                for msg in consumer.consume(1000, timeout=0.2):
                    if msg.error():
                        continue
                    self.store.apply(msg.key().decode(), msg.value())
                    if msg.offset() + 1 >= ends.get(msg.partition(), 0):
                        caught_up.add(msg.partition())
                if len(caught_up) == len(ends):
                    self.store.ready.set()
        finally:
            consumer.close()
