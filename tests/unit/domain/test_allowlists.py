"""Data minimisation: every outbound command carries only the fields its flow's allow-list names."""

from __future__ import annotations

from typing import Any

import pytest

from app.catalog import spec
from app.contracts import default_index
from app.domain.allowlists import OUTBOUND, outside
from app.domain.feedback.lifecycle import ErpKind
from app.domain.outputs import CrmUpdate, CustomerCommand, OrderAction, SalesOrderCommand
from app.engine.routes import TOPICS
from tests.support.deals import Source, header, line
from tests.support.erp import Deal, at, updates
from tests.unit.domain.test_customers import account_change, command
from tests.unit.domain.test_orders import commands, deal_events, run

CONTRACTS = {kind: spec(TOPICS[kind]).value_contract for kind in OUTBOUND}


def contract_leaves(schema: Any, prefix: str = "", named: dict[str, Any] | None = None) -> set[str]:
    """Every leaf path a contract can carry (named types resolved, union branches merged)."""
    named = {} if named is None else named
    if isinstance(schema, str):
        return contract_leaves(named[schema], prefix, named) if schema in named else {prefix}
    if isinstance(schema, list):
        return set().union(*(contract_leaves(s, prefix, named) for s in schema if s != "null"))
    kind = schema.get("type")
    if kind == "record":
        named[schema["name"]] = named[schema.get("namespace", "") + "." + schema["name"]] = schema
        found: set[str] = set()
        for f in schema["fields"]:
            found |= contract_leaves(f["type"], f"{prefix}.{f['name']}" if prefix else f["name"], named)
        return found
    if kind == "array":
        return contract_leaves(schema["items"], f"{prefix}[]", named)
    if kind == "enum":
        named[schema["name"]] = schema
    return {prefix}


@pytest.mark.parametrize("kind", list(OUTBOUND), ids=lambda k: k.__name__)
def test_each_allow_list_names_exactly_the_fields_its_contract_can_carry(kind):
    leaves = contract_leaves(default_index().expanded(CONTRACTS[kind]))
    assert leaves - OUTBOUND[kind] == set(), "a contract field nobody decided to send: add it to the allow-list"
    assert OUTBOUND[kind] - leaves == set(), "an allow-list entry the contract does not have"


def sales_order_commands() -> list[SalesOrderCommand]:
    src = Source()
    state, decisions = run(deal_events(src))
    more = src.event("opp-1", src.change("opportunity_line_item", "l2", line("opp-1", "prod-b", "2", "50")))
    amend = src.event("opp-1", src.change("opportunity", "opp-1", header(amount="300.00")))
    reopen = src.event("opp-1", src.change("opportunity", "opp-1", header(stage="NEGOTIATION")))
    reclose = src.event("opp-1", src.change("opportunity", "opp-1", header()))
    lost = src.event("opp-1", src.change("opportunity", "opp-1", header(stage="CLOSED_LOST")))
    _, more = run([more, amend, reopen, reclose, lost], state=state)
    return commands(decisions + more)


def test_sales_order_commands_of_every_kind_stay_inside_their_allow_list():
    sent = sales_order_commands()
    assert {c.action for c in sent} == set(OrderAction)
    for c in sent:
        assert outside(SalesOrderCommand, c.value) == []


def test_customer_commands_stay_inside_their_allow_list():
    change, account = account_change()
    assert outside(CustomerCommand, command(change, account)) == []


def test_crm_updates_stay_inside_their_allow_list():
    deal = Deal()
    for kind, when, fields in [
        (ErpKind.ACCEPTED, at(minutes=5), {}),
        (ErpKind.SHIPPED, at(days=1), {}),
        (ErpKind.INVOICED, at(days=2), {"due_date": "2026-12-29"}),
        (ErpKind.HOLD_PLACED, at(days=3), {}),
        (ErpKind.PAID, at(days=5), {"amount": "200.00"}),
    ]:
        deal.erp(kind, when, **fields)
    sent = updates(deal.outputs)
    assert sent
    for value in sent:
        assert outside(CrmUpdate, value) == []


def test_a_field_outside_the_allow_list_is_named():
    value = sales_order_commands()[0].value
    leaky = {**value, "command": {**value["command"], "contact_email": "jane@example.com"}}
    leaky["command"]["lines"] = [{**value["command"]["lines"][0], "margin": "12.5"}]
    assert outside(SalesOrderCommand, leaky) == ["command.contact_email", "command.lines[].margin"]
