"""What the Debezium PostgreSQL connector would write for the CRM tables, as Python values.

This module owns the simulated CDC side of the contracts under ``avro/crm``: row builders for each
CRM table, the ``Source`` and ``event.block`` blocks, change-event envelopes (ops c, u, d, r, t),
message keys and the ExtractNewRecordState ("unwrapped") form. Everything is a pure function of its
arguments (plus the contract files, read once), and every value is of the Python type fastavro
expects for that contract: ``Decimal`` quantized to the column scale, ``datetime.date`` for
``io.debezium.time.Date``, int microseconds for ``MicroTimestamp``, ISO-8601 strings for
``ZonedTimestamp``. Nothing here talks to Kafka or the registry.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from types import EllipsisType
from typing import Any

from app.contracts import default_index

VERSION = "2.7.3.Final"
SERVER = "crm"
DATABASE = "crm"
SCHEMA = "public"
TABLES = ("account", "contact", "opportunity", "opportunity_line_item", "product", "pricebook_entry")
UNWRAPPED_TABLES = ("opportunity", "opportunity_line_item")
OPS = frozenset({"c", "u", "d", "r", "t"})
SNAPSHOT_VALUES = frozenset({"true", "last", "false", "incremental"})  # Source.snapshot's allowed enum
PROCESSING_LAG_MS = 7  # envelope ts_ms (connector processing time) trails source.ts_ms (commit time)

UNAVAILABLE = "__debezium_unavailable_value"
"""Debezium's default ``unavailable.value.placeholder``.

With REPLICA IDENTITY DEFAULT, PostgreSQL leaves unchanged TOASTed values out of an update's WAL
record, so Debezium puts this placeholder into those columns of ``after``: the literal string in
string columns, its UTF-8 bytes in bytes columns.
"""

Row = dict[str, Any]

# Fixed sample address used for the opportunity's billing/shipping columns.
ADDRESS = {"street": "Friedrichstraße 100", "city": "Berlin", "postal_code": "10117", "country": "DE"}


class Lsn:
    """A deterministic WAL position and commit clock: ``next()`` moves both forward.

    The first ``next()`` returns ``start``; each later one adds ``step`` plus a seeded jitter of up to
    ``step // 10``. ``ts_ms`` (commit time, epoch ms) advances 1..25 ms per call, and ``tx_id`` (the
    PostgreSQL xid of an auto-committed change) by one.
    """

    def __init__(
        self,
        start: int = 0x2000_0000,
        step: int = 10_000_000,
        ts_ms: int = 1_795_774_530_000,  # 2026-11-27T10:15:30Z
        seed: int = 0,
        tx_start: int = 1_000,
    ) -> None:
        if step < 1:
            raise ValueError("step must be positive")
        self.step, self._rng = step, random.Random(seed)
        self.lsn, self.ts_ms, self.tx_id = start, ts_ms, tx_start - 1
        self._started = False  # the first next() returns start and the clock as given

    def next(self) -> int:
        """The next LSN (strictly greater than the last); also advances ``ts_ms`` and ``tx_id``."""
        if self._started:
            self.lsn += self.step + self._rng.randrange(self.step // 10 + 1)
            self.ts_ms += self._rng.randint(1, 25)
        self._started = True
        self.tx_id += 1
        return self.lsn


@cache
def value_columns(table: str) -> dict[str, Any]:
    """Column name → Avro type of ``crm.public.<table>.Value``, in contract order."""
    name = f"crm.public.{table}.Value"
    raw = default_index().raw
    if name not in raw:
        raise ValueError(f"no Value contract for CRM table {table!r}")
    return {f["name"]: f["type"] for f in raw[name]["fields"]}


def _non_null(avro_type: Any) -> Any:
    if isinstance(avro_type, list):
        return next(t for t in avro_type if t != "null")
    return avro_type


def _coerce(avro_type: Any, value: Any) -> Any:
    """``value`` as the Python type fastavro expects for the column's (non-null) Avro type."""
    t = _non_null(avro_type)
    if value is None or not isinstance(t, dict):
        return value
    if t.get("logicalType") == "decimal":
        q = Decimal(str(value)).quantize(Decimal(1).scaleb(-t["scale"]), rounding=ROUND_HALF_UP)
        if len(q.as_tuple().digits) > t["precision"]:
            raise ValueError(f"{value} overflows numeric({t['precision']},{t['scale']})")
        return q
    kind = t.get("connect.name")
    if kind == "io.debezium.time.Date" and isinstance(value, str):
        return date.fromisoformat(value)
    if kind == "io.debezium.time.MicroTimestamp" and isinstance(value, datetime):
        # timestamp (without time zone): Debezium encodes the wall-clock time as if it were UTC.
        return round(value.replace(tzinfo=UTC).timestamp() * 1_000_000)
    if kind == "io.debezium.time.ZonedTimestamp" and isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a ZonedTimestamp needs an aware datetime")
        return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return value


def make_row(table: str, values: dict[str, Any], overrides: dict[str, Any]) -> Row:
    """A complete ``<table>`` row: ``values`` then ``overrides`` over all-None columns, types coerced.

    Raises ``KeyError`` for a name that is not a column of the table's Value contract.
    """
    cols = value_columns(table)
    out: Row = dict.fromkeys(cols)
    for name, value in (values | overrides).items():
        if name not in cols:
            raise KeyError(f"{table} has no column {name!r}")
        out[name] = _coerce(cols[name], value)
    return out


def account_row(
    id: str,
    name: str,
    erp_customer_number: str | None = None,
    payment_terms: str = "NET30",
    tax_code: str = "STD",
    tax_exempt: bool = False,
    country: str = "DE",
    last_modified_by_id: str = "005-sales",
    **overrides: Any,
) -> Row:
    """An ``account`` row; ``country`` fills billing_country and shipping_country."""
    return make_row(
        "account",
        {
            "id": id,
            "name": name,
            "erp_customer_number": erp_customer_number,
            "payment_terms": payment_terms,
            "tax_code": tax_code,
            "tax_exempt": tax_exempt,
            "billing_country": country,
            "shipping_country": country,
            "last_modified_by_id": last_modified_by_id,
        },
        overrides,
    )


def contact_row(
    id: str,
    account_id: str,
    last_name: str = "Muster",
    first_name: str | None = "Erika",
    email: str | None = None,
    **overrides: Any,
) -> Row:
    """A ``contact`` row."""
    values = {"id": id, "account_id": account_id, "first_name": first_name, "last_name": last_name, "email": email}
    return make_row("contact", values, overrides)


def product_row(
    id: str,
    product_code: str,
    name: str,
    erp_item_code: str | EllipsisType | None = ...,
    is_active: bool = True,
    **overrides: Any,
) -> Row:
    """A ``product`` row; ``erp_item_code`` defaults to ``"ERP-<product_code>"`` (None = unmapped)."""
    item = f"ERP-{product_code}" if erp_item_code is ... else erp_item_code
    values = {"id": id, "product_code": product_code, "name": name, "erp_item_code": item, "is_active": is_active}
    return make_row("product", values, overrides)


def pricebook_row(id: str, product_id: str, currency: str, unit_price: Decimal | int | str, **overrides: Any) -> Row:
    """A ``pricebook_entry`` row."""
    values = {"id": id, "product_id": product_id, "currency_iso_code": currency, "unit_price": unit_price}
    return make_row("pricebook_entry", values, overrides)


def opportunity_row(
    id: str,
    account_id: str,
    stage_name: str,
    amount: Decimal | int | str,
    currency: str = "EUR",
    close_date: date = date(2026, 11, 27),
    payment_terms: str = "NET30",
    billing_schedule: str = "ANNUAL",
    tax_code: str = "STD",
    contract_term_months: int = 12,
    last_modified_by_id: str = "005-sales",
    **overrides: Any,
) -> Row:
    """An ``opportunity`` row with billing and shipping address filled from ``ADDRESS``."""
    values = {
        "id": id,
        "account_id": account_id,
        "stage_name": stage_name,
        "amount": amount,
        "currency_iso_code": currency,
        "close_date": close_date,
        "payment_terms": payment_terms,
        "billing_schedule": billing_schedule,
        "tax_code": tax_code,
        "contract_term_months": contract_term_months,
        "last_modified_by_id": last_modified_by_id,
    }
    for side in ("billing", "shipping"):
        values |= {f"{side}_{part}": value for part, value in ADDRESS.items()}
    return make_row("opportunity", values, overrides)


def line_row(
    id: str,
    opportunity_id: str,
    product_id: str,
    quantity: Decimal | int | str,
    unit_price: Decimal | int | str,
    list_price: Decimal | int | str | None = None,
    discount: Decimal | int | str | None = None,
    **overrides: Any,
) -> Row:
    """An ``opportunity_line_item`` row; total_price = quantity * unit_price (discount already in it)."""
    values = {
        "id": id,
        "opportunity_id": opportunity_id,
        "product_id": product_id,
        "quantity": quantity,
        "unit_price": unit_price,
        "list_price": list_price,
        "discount": discount,
    }
    base = make_row("opportunity_line_item", values, {})
    values["total_price"] = base["quantity"] * base["unit_price"]  # quantized to scale 2 by make_row()
    return make_row("opportunity_line_item", values, overrides)


def with_unavailable(row: Row, *columns: str) -> Row:
    """A copy of ``row`` with ``columns`` replaced by the unchanged-TOAST placeholder.

    The table is recognised from the row's column names. String columns get ``UNAVAILABLE``; bytes
    columns, including ``decimal`` ones, get ``UNAVAILABLE.encode()``: fastavro writes those bytes
    into a decimal column, but reads them back as a meaningless Decimal (the bytes taken as the
    unscaled integer, about 1e65), so the placeholder does not survive there. Only string and
    bytes columns can be unavailable in this simulator: others (and the key ``id``) raise ValueError.
    """
    table = _table_of(row)
    out = dict(row)
    for name in columns:
        t = _non_null(value_columns(table)[name])
        base = t["type"] if isinstance(t, dict) else t
        if name == "id" or base not in ("string", "bytes"):
            raise ValueError(f"{table}.{name} ({base}) cannot carry the unavailable-value placeholder")
        out[name] = UNAVAILABLE if base == "string" else UNAVAILABLE.encode()
    return out


def _table_of(row: Row) -> str:
    names = {n for n in row if not n.startswith("__")}  # an unwrapped row's added fields don't count
    for table in TABLES:
        if set(value_columns(table)) == names:
            return table
    raise ValueError(f"no CRM table has exactly the columns {sorted(names)}")


def key(row_id: str) -> dict[str, str]:
    """The message key (``crm.public.<table>.Key``) of a row."""
    return {"id": row_id}


def source(table: str, lsn: int, ts_ms: int, tx_id: int | None = None, snapshot: str | None = None) -> dict[str, Any]:
    """The ``io.debezium.connector.postgresql.Source`` block; snapshot None means "false"."""
    snapshot = "false" if snapshot is None else snapshot
    if snapshot not in SNAPSHOT_VALUES:
        raise ValueError(f"snapshot must be one of {sorted(SNAPSHOT_VALUES)}, not {snapshot!r}")
    return {
        "version": VERSION,
        "connector": "postgresql",
        "name": SERVER,
        "ts_ms": ts_ms,
        "snapshot": snapshot,
        "db": DATABASE,
        "sequence": f'["{lsn - 1}","{lsn}"]',
        "ts_us": ts_ms * 1_000,
        "ts_ns": ts_ms * 1_000_000,
        "schema": SCHEMA,
        "table": table,
        "txId": tx_id,
        "lsn": lsn,
        "xmin": None,
    }


def transaction(tx_id: int, lsn: int, total_order: int = 1, data_collection_order: int = 1) -> dict[str, Any]:
    """The ``event.block`` transaction metadata; ``lsn`` is the transaction's (shared by its events)."""
    return {"id": f"{tx_id}:{lsn}", "total_order": total_order, "data_collection_order": data_collection_order}


def envelope(
    table: str,
    op: str,
    before: Row | None,
    after: Row | None,
    lsn: int,
    ts_ms: int,
    tx: dict[str, Any] | None = None,
    *,
    tx_id: int | None = None,
    snapshot: str | None = None,
) -> dict[str, Any]:
    """The ``crm.public.<table>.Envelope`` value of one change.

    ``ts_ms`` is the commit time (source.ts_ms); the envelope's own ts_* are ``PROCESSING_LAG_MS``
    later. source.txId is ``tx_id``, else the xid in ``tx["id"]``.
    """
    if op not in OPS:
        raise ValueError(f"op must be one of {sorted(OPS)}, not {op!r}")
    value_columns(table)  # unknown table → ValueError
    if tx_id is None and tx is not None:
        tx_id = int(tx["id"].split(":")[0])
    processed = ts_ms + PROCESSING_LAG_MS
    return {
        "before": before,
        "after": after,
        "source": source(table, lsn, ts_ms, tx_id, snapshot),
        "transaction": tx,
        "op": op,
        "ts_ms": processed,
        "ts_us": processed * 1_000,
        "ts_ns": processed * 1_000_000,
    }


def _event(
    table: str, op: str, before: Row | None, after: Row | None, lsn_src: Lsn, tx: dict[str, Any] | None, snapshot: str
) -> dict[str, Any]:
    lsn = lsn_src.next()
    tx_id = None if tx is not None else lsn_src.tx_id  # without a tx block: one auto-commit xid per event
    return envelope(table, op, before, after, lsn, lsn_src.ts_ms, tx, tx_id=tx_id, snapshot=snapshot)


def create(table: str, row: Row, lsn_src: Lsn, *, tx: dict[str, Any] | None = None) -> dict[str, Any]:
    """An insert (op "c") at the next position of ``lsn_src``."""
    return _event(table, "c", None, row, lsn_src, tx, "false")


def update(
    table: str, before: Row | None, after: Row, lsn_src: Lsn, *, tx: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An update (op "u"); pass ``before=None`` for REPLICA IDENTITY DEFAULT, which sends no old row."""
    return _event(table, "u", before, after, lsn_src, tx, "false")


def delete(table: str, before: Row, lsn_src: Lsn, *, tx: dict[str, Any] | None = None) -> dict[str, Any]:
    """A delete (op "d"); Debezium follows it with a tombstone (null value), which is not built here."""
    return _event(table, "d", before, None, lsn_src, tx, "false")


def snapshot_read(table: str, row: Row, lsn_src: Lsn, last: bool = False) -> dict[str, Any]:
    """A snapshot read (op "r"), source.snapshot "true" or "last" for the snapshot's final record.

    Simplification: real snapshot records share one LSN; here each takes the next position.
    """
    return _event(table, "r", None, row, lsn_src, None, "last" if last else "true")


def truncate(table: str, lsn_src: Lsn, *, tx: dict[str, Any] | None = None) -> dict[str, Any]:
    """A TRUNCATE (op "t"): no before, no after (its Kafka key is null)."""
    return _event(table, "t", None, None, lsn_src, tx, "false")


def restamp(envelope: dict[str, Any], ts_ms: int) -> dict[str, Any]:
    """Move an envelope's commit time to ``ts_ms`` (in place; returned): source.ts_* and, trailing
    by ``PROCESSING_LAG_MS``, the envelope's own ts_*. For a live feed, whose events are built ahead."""
    processed = ts_ms + PROCESSING_LAG_MS
    envelope["source"].update(ts_ms=ts_ms, ts_us=ts_ms * 1_000, ts_ns=ts_ms * 1_000_000)
    envelope.update(ts_ms=processed, ts_us=processed * 1_000, ts_ns=processed * 1_000_000)
    return envelope


def unwrapped(table: str, row: Row, op: str, lsn: int, ts_ms: int, deleted: bool = False) -> Row:
    """The ExtractNewRecordState form (add.fields=op,source.ts_ms,source.lsn; delete.handling.mode=rewrite).

    ``__deleted`` is "true" when ``deleted`` or ``op == "d"``. Only opportunity and
    opportunity_line_item have an Unwrapped contract; other tables raise ValueError.
    """
    if table not in UNWRAPPED_TABLES:
        raise ValueError(f"no Unwrapped contract for {table!r} (only {', '.join(UNWRAPPED_TABLES)})")
    if op not in OPS - {"t"}:
        raise ValueError(f"op must be c, u, d or r, not {op!r}")
    flag = "true" if deleted or op == "d" else "false"
    return {**row, "__op": op, "__deleted": flag, "__source_ts_ms": ts_ms, "__source_lsn": lsn}
