"""Salesforce Change Data Capture events as a Salesforce CDC source connector writes them
(avro/salesforce/), for the simulator and the tests: creates with every field, updates with only the
changed ones (others null, ``nulledFields`` for those set to null), deletes, multi-record events,
gap and overflow events, in transactions ordered by commit time, commit number and sequence number.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

NAMESPACE = "com.sforce.eventbus"
ENTITIES = ("Opportunity", "OpportunityLineItem", "Account", "Product2", "PricebookEntry")
USER = "005000000000001AAA"  # a sales user
INTEGRATION_CLIENT = "crm-erp-sync"  # the integration's API client id (its write-backs' changeOrigin)
RESYNC_CLIENT = "crm-erp-sync-resync"  # what answers a resync request here


def contract(entity: str) -> str:
    return f"{NAMESPACE}.{entity}ChangeEvent"


def topic(entity: str) -> str:
    return f"salesforce.{entity}ChangeEvent"


def origin(client: str | None) -> str:
    return "" if client is None else f"com/salesforce/api/rest/62.0;client={client}"


@dataclass
class Transactions:
    """Salesforce's commit order: each transaction a commit time (ms) and a commit number, each of its
    changes a sequence number from 1."""

    ts_ms: int
    commit: int = 10_650_000_000
    _seq: int = 0
    key: str = ""
    _n: int = field(default=0, repr=False)

    def begin(self, at_ms: int | None = None) -> None:
        self._n += 1
        self.commit += 1
        self.ts_ms = at_ms if at_ms is not None else self.ts_ms + 1
        self.key = f"tx-{self.commit:x}-{self._n}"
        self._seq = 0

    def header(self, entity: str, ids: list[str], kind: str, client: str | None, **extra: Any) -> dict[str, Any]:
        self._seq += 1
        return {
            "entityName": entity,
            "recordIds": ids,
            "changeType": kind,
            "changeOrigin": origin(client),
            "transactionKey": self.key,
            "sequenceNumber": self._seq,
            "commitTimestamp": self.ts_ms,
            "commitNumber": self.commit,
            "commitUser": USER,
            "nulledFields": extra.get("nulled", []),
            "diffFields": [],
            "changedFields": extra.get("changed", []),
        }


def _money(value: Decimal | float | None) -> float | None:
    return None if value is None else float(value)


def event(tx: Transactions, entity: str, ids: list[str], kind: str, fields: dict[str, Any],
          client: str | None = None, nulled: list[str] | None = None) -> dict[str, Any]:  # fmt: skip
    """One change event; ``fields`` by API name (absent ones are null, as a connector writes them)."""
    changed = sorted({*fields, *(nulled or [])}) if kind == "UPDATE" else []
    value = {f: _money(v) if isinstance(v, Decimal) else v for f, v in fields.items()}
    for name in nulled or []:
        value[name] = None
    return {"ChangeEventHeader": tx.header(entity, ids, kind, client, nulled=nulled or [], changed=changed), **value}


def gap(tx: Transactions, entity: str, ids: list[str], kind: str = "GAP_UPDATE") -> dict[str, Any]:
    return {"ChangeEventHeader": tx.header(entity, ids, kind, None)}


def overflow(tx: Transactions, entity: str) -> dict[str, Any]:
    return {"ChangeEventHeader": tx.header(entity, [], "GAP_OVERFLOW", None)}


def opportunity(opp_id: str, account: str, stage: str, amount: Decimal | None, close: dt.date,
                currency: str = "EUR", **extra: Any) -> dict[str, Any]:  # fmt: skip
    return {
        "AccountId": account,
        "Name": f"Deal {opp_id}",
        "StageName": stage,
        "Amount": amount,
        "CurrencyIsoCode": currency,
        "CloseDate": close,
        "Payment_Terms__c": "NET30",
        "Billing_Schedule__c": "Upfront",
        "Tax_Exempt__c": False,
        "LastModifiedById": USER,
        **extra,
    }


def line(opp_id: str, product: str, quantity: Decimal, unit: Decimal, list_price: Decimal | None = None) -> dict:
    total = (quantity * unit).quantize(Decimal("0.01"))
    return {
        "OpportunityId": opp_id,
        "Product2Id": product,
        "Quantity": quantity,
        "UnitPrice": unit,
        "ListPrice": list_price if list_price is not None else unit,
        "Discount": Decimal(0),
        "TotalPrice": total,
    }


def account(account_id: str, name: str, customer_number: str | None, **extra: Any) -> dict[str, Any]:
    address = {"Street": "Friedrichstraße 100", "City": "Berlin", "PostalCode": "10117", "Country": "DE"}
    return {
        "Name": name,
        "BillingAddress": {**address, "State": None, "StateCode": None, "CountryCode": "DE"},
        "ShippingAddress": {**address, "State": None, "StateCode": None, "CountryCode": "DE"},
        "ERP_Customer_Number__c": customer_number,
        "Payment_Terms__c": "NET30",
        "Tax_Exempt__c": False,
        "LastModifiedById": USER,
        **extra,
    }


def product(product_id: str, sku: str, name: str) -> dict[str, Any]:
    return {"Name": name, "ProductCode": sku, "IsActive": True, "ERP_Item_Code__c": f"ERP-{sku}"}


def price(product_id: str, currency: str, unit: Decimal) -> dict[str, Any]:
    return {"Pricebook2Id": "01s000000000001AAA", "Product2Id": product_id, "CurrencyIsoCode": currency,
            "UnitPrice": unit, "IsActive": True}  # fmt: skip
