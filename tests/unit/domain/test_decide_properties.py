"""Property: any schema-valid Debezium history of a deal is decided without surprises.

Random but contract-valid opportunity and line rows (every column drawn within its Avro type:
decimals within their precision, dates up to 9999-12-31, any text, unknown products, accounts and
currencies) go the worker's way: Debezium envelope → Avro bytes → decode → ``normalise`` → the JSON
hop through ``sync.deal-changes`` → ``decide`` with the deal state round-tripped through its JSON
form between events. ``decide`` may refuse with a ``SyncError`` only, and every output it produces
must be a valid record of its contract: the deal agent validates and encodes outputs before it writes
state, so an output that does not fit its contract is quarantined as ``UNEXPECTED_ERROR`` instead of
being raised as a reason-coded exception for the deal.
"""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal, localcontext

import fastavro
import orjson
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from app.cdc import messages
from app.cdc.envelope import normalise
from app.contracts import default_index
from app.contracts.models import model
from app.domain.changes import Lineage
from app.domain.errors import SyncError
from app.domain.orders.deal import DealState
from app.domain.orders.decide import DealChange, decide
from app.domain.orders.validation import ERP_PRICE_LIMIT, Policy
from app.domain.outputs import JSON
from app.engine.routes import route
from app.sim import debezium as dbz
from tests.support.deals import NOW, references

POLICY = Policy()  # no grace period: a failing close raises its exceptions at once
OPP = "006-p"
_PARSED: dict[str, dict] = {}


def parsed(contract: str) -> dict:
    if contract not in _PARSED:
        _PARSED[contract] = fastavro.parse_schema(default_index().expanded(contract))
    return _PARSED[contract]


def decimals(precision: int, scale: int, sign: bool = True) -> st.SearchStrategy[Decimal]:
    """Every value a numeric(precision, scale) column holds, biased toward its edges."""
    top = Decimal(10) ** (precision - scale) - Decimal(1).scaleb(-scale)
    low = -top if sign else Decimal(0)
    return st.one_of(
        st.decimals(min_value=low, max_value=top, places=scale, allow_nan=False, allow_infinity=False),
        st.sampled_from([top, low, Decimal(0), Decimal("0.01"), Decimal("-0.01")]),
    )


text = st.text(max_size=12)
dates = st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 31))

# what a column may be changed to, within its Avro type; unchanged columns keep a complete deal's values
HEADER_COLUMNS = {
    "account_id": st.sampled_from(["acc-unknown", ""]) | st.none(),
    "name": st.none() | text,
    "stage_name": st.sampled_from(["Negotiation", "Closed Lost", "Prospecting", "closed won"]) | text,
    "amount": st.none() | decimals(18, 2),
    "currency_iso_code": st.sampled_from(["USD", "XXX", ""]) | st.none(),
    "close_date": st.none() | dates,
    "payment_terms": st.none() | text,
    "billing_schedule": st.sampled_from(["Monthly", "Upfront", "Milestone", "bogus"]) | st.none(),
    "tax_code": st.none() | text,
    "tax_exempt": st.none() | st.booleans(),
    "contract_term_months": st.none() | st.integers(-(2**31), 2**31 - 1),
    "last_modified_by_id": st.sampled_from(["005-integration"]) | st.none(),
    "is_deleted": st.none() | st.booleans(),
    "billing_street": st.none() | text,
    "shipping_country": st.none() | text,
}
LINE_COLUMNS = {
    "product_id": st.sampled_from(["prod-unknown", ""]) | st.none(),
    "list_price": st.none() | decimals(18, 2),
    "discount": st.none() | decimals(5, 2),
    "total_price": st.none() | decimals(18, 2),
    "service_date": st.none() | dates,
    "end_date": st.none() | dates,
}


@st.composite
def line_row(draw, line_id: str) -> dict:
    product, list_price = draw(st.sampled_from([("prod-a", Decimal(100)), ("prod-b", Decimal(50))]))
    quantity = draw(st.sampled_from([Decimal(1), Decimal(3)]) | decimals(18, 4))
    unit = draw(st.sampled_from([list_price, list_price * Decimal("0.8")]) | decimals(18, 2))
    values = {"opportunity_id": OPP, "product_id": product, "quantity": quantity, "unit_price": unit}
    with localcontext(prec=60):
        total = (quantity * unit).quantize(Decimal("0.01"))
    values["total_price"] = total if abs(total) < Decimal(10) ** 16 else None  # numeric(18,2) holds it, or null
    for column in draw(st.sets(st.sampled_from(sorted(LINE_COLUMNS)), max_size=2)):
        values[column] = draw(LINE_COLUMNS[column])
    return dbz.make_row("opportunity_line_item", {"id": line_id}, values)


@st.composite
def header_row(draw, amount: Decimal | None) -> dict:
    row = dbz.opportunity_row(OPP, "acc-1", "Closed Won", amount, tax_code="DE-STD")
    changed = {c: draw(HEADER_COLUMNS[c]) for c in draw(st.sets(st.sampled_from(sorted(HEADER_COLUMNS)), max_size=3))}
    return dbz.make_row("opportunity", row, changed)


@st.composite
def histories(draw) -> list[tuple[str, dict]]:
    """Up to 3 lines and 1..3 header versions, in order or shuffled; the header's amount is the
    lines' sum unless the header's amount is among the columns drawn."""
    lines = [draw(line_row(f"{OPP}-l{i}")) for i in range(draw(st.integers(0, 3)))]
    total = sum((ln["total_price"] or Decimal(0) for ln in lines), Decimal(0))
    amount = total if abs(total) < Decimal(10) ** 16 else None
    headers = [draw(header_row(amount)) for _ in range(draw(st.integers(1, 3)))]
    changes = [("opportunity_line_item", row) for row in lines] + [("opportunity", row) for row in headers]
    return draw(st.permutations(changes)) if draw(st.booleans()) else changes


def through_the_wire(table: str, envelope: dict) -> dict:
    """Encoded with the table's Envelope contract and read back: the values a consumer sees."""
    schema = parsed(f"crm.public.{table}.Envelope")
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, envelope)
    buf.seek(0)
    return fastavro.schemaless_reader(buf, schema, None, return_record_name=True, return_record_name_override=True)


def assert_valid_output(out) -> None:
    if route(out).contract == JSON:
        orjson.dumps(out.value)
        return
    record = model(route(out).contract).model_validate(out.value)
    fastavro.schemaless_writer(io.BytesIO(), parsed(route(out).contract), record.to_avro())


def _line(qty: str, unit: str, total: str | None) -> dict:
    values = {"opportunity_id": OPP, "product_id": "prod-a", "quantity": qty, "unit_price": unit, "total_price": total}
    return dbz.make_row("opportunity_line_item", {"id": f"{OPP}-l0"}, values)


def _closed_won(amount: str) -> dict:
    return dbz.opportunity_row(OPP, "acc-1", "Closed Won", amount, tax_code="DE-STD")


# the two deals this property found: each became a create that did not fit SalesOrderCommand
FOUND = {
    # a unit price beyond the ERP line's decimal(18,4); CRM numeric(18,2) allows it
    "unit price of 10^16": [
        ("opportunity_line_item", _line("1", "9999999999999999.99", "9999999999999999.99")),
        ("opportunity", _closed_won("9999999999999999.99")),
    ],
    # a line without a total (the column is nullable): the create's net_amount was the string "None"
    "line without a total": [
        ("opportunity_line_item", _line("1", "100.00", None)),
        ("opportunity", _closed_won("0.00")),
    ],
}


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(history=histories())
@example(history=FOUND["unit price of 10^16"])
@example(history=FOUND["line without a total"])
def test_any_valid_cdc_history_is_decided_into_valid_outputs_or_a_reason_code(history):
    lsn = dbz.Lsn()
    refs = references()
    raw: bytes | None = None
    before: dict[str, dict] = {}
    for offset, (table, row) in enumerate(history):
        previous = before.get(row["id"])
        envelope = dbz.create(table, row, lsn) if previous is None else dbz.update(table, previous, row, lsn)
        before[row["id"]] = row
        try:
            change = normalise(
                table, through_the_wire(table, envelope), row["id"], parsed(f"crm.public.{table}.Envelope")
            )
        except SyncError as exc:
            event(f"quarantined at ingest: {exc.reason}")
            continue
        opp = change.row_id if table == "opportunity" else change.fields.get("opportunity_id")
        lineage = Lineage(f"crm.public.{table}", 0, offset, 1, change.position.ts_ms)
        # the hop through sync.deal-changes (JSON), read back as the deal agent reads it
        item = messages.parse_deal_change(
            messages.deal_change(opp, change, lineage), "sync.deal-changes", f"sync.deal-changes/0/{offset}"
        )
        state = DealState.model_validate_json(raw) if raw else None
        try:
            decision = decide(state, item, refs, POLICY, NOW)
        except SyncError as exc:
            event(f"refused by decide: {exc.reason}")
            continue
        event(f"decided: {decision.outcome}")
        for out in decision.outputs:
            assert_valid_output(out)
        raw = decision.state.model_dump_json().encode()


def test_what_the_property_found_is_now_rejected_with_a_reason_code():
    for name, history in FOUND.items():
        state = None
        for offset, (table, row) in enumerate(history):
            wire = through_the_wire(table, dbz.create(table, row, dbz.Lsn(start=1000 + offset)))
            change = normalise(table, wire, None, parsed(f"crm.public.{table}.Envelope"))
            lineage = Lineage(f"crm.public.{table}", 0, offset, 1, None)
            event = DealChange(OPP, change, lineage, f"sync.deal-changes/0/{offset}")
            decision = decide(state, event, references(), POLICY, NOW)
            state = decision.state
        assert decision.outcome == "rejected", name
        assert {o.value["reason_code"] for o in decision.outputs if route(o).topic == "sync.exceptions"} & {
            "PRICE_OUT_OF_POLICY",
            "AMOUNT_MISMATCH",
        }, name


def test_the_price_limit_is_what_an_erp_order_line_holds():
    line = default_index().raw["io.crmerpsync.canonical.SalesOrderLine"]
    for field in ("unit_price", "list_price"):
        t = next(f["type"] for f in line["fields"] if f["name"] == field)
        t = next(x for x in t if x != "null") if isinstance(t, list) else t
        assert Decimal(10) ** (t["precision"] - t["scale"]) == ERP_PRICE_LIMIT, field
