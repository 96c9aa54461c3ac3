"""Data minimisation: every outbound command carries only the fields its flow's allow-list names."""

from __future__ import annotations

from typing import Any

import pytest

from app.catalog import default_catalog
from app.contracts import default_index
from app.domain.allowlists import OUTBOUND, outside
from app.domain.feedback.lifecycle import ErpKind
from tests.support.deals import Source, header, line
from tests.support.erp import Deal, at, updates
from tests.unit.domain.test_customers import account_change, command
from tests.unit.domain.test_orders import commands, deal_events, run

CONTRACTS = {s.name: s.value_contract for s in default_catalog() if s.name in OUTBOUND}


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


@pytest.mark.parametrize("topic", sorted(OUTBOUND))
def test_each_allow_list_names_exactly_the_fields_its_contract_can_carry(topic):
    leaves = contract_leaves(default_index().expanded(CONTRACTS[topic]))
    assert leaves - OUTBOUND[topic] == set(), "a contract field nobody decided to send: add it to the allow-list"
    assert OUTBOUND[topic] - leaves == set(), "an allow-list entry the contract does not have"


def sales_order_commands() -> list[dict[str, Any]]:
    src = Source()
    state, decisions = run(deal_events(src))
    more = src.event("opp-1", src.change("opportunity_line_item", "l2", line("opp-1", "prod-b", "2", "50")))
    amend = src.event("opp-1", src.change("opportunity", "opp-1", header(amount="300.00")))
    reopen = src.event("opp-1", src.change("opportunity", "opp-1", header(stage="NEGOTIATION")))
    reclose = src.event("opp-1", src.change("opportunity", "opp-1", header()))
    lost = src.event("opp-1", src.change("opportunity", "opp-1", header(stage="CLOSED_LOST")))
    _, more = run([more, amend, reopen, reclose, lost], state=state)
    return [c.value for c in commands(decisions + more)]


def test_sales_order_commands_of_every_kind_stay_inside_their_allow_list():
    values = sales_order_commands()
    kinds = {v["command"]["-type"].rsplit(".", 1)[1] for v in values}
    assert kinds == {"CreateSalesOrder", "AmendSalesOrder", "CancelSalesOrder"}
    for value in values:
        assert outside("erp.commands.sales-order", value) == []


def test_customer_commands_stay_inside_their_allow_list():
    change, account = account_change()
    assert outside("erp.commands.customer", command(change, account)) == []


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
        assert outside("crm.commands.update", value) == []


def test_a_field_outside_the_allow_list_is_named():
    value = sales_order_commands()[0]
    leaky = {**value, "command": {**value["command"], "contact_email": "jane@example.com"}}
    leaky["command"]["lines"] = [{**value["command"]["lines"][0], "margin": "12.5"}]
    assert outside("erp.commands.sales-order", leaky) == ["command.contact_email", "command.lines[].margin"]
