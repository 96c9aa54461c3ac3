"""The simulated ERP's customer master answers customer commands as an ERP would."""

from __future__ import annotations

from app.sim.erp_system import ErpConfig, ErpSystem


def command(account: str, command_id: str, action: str = "UPSERT", **fields) -> dict:
    body = {"account_id": account, "name": account, "customer_number": None, "action": action, **fields}
    return {"envelope": {"command_id": command_id}, "command": body}


def run(erp: ErpSystem, *commands: dict) -> list[dict]:
    for n, c in enumerate(commands):
        erp.customers.on_command(c, 100.0 + n)
    return erp.customers.due(1_000.0)


def test_a_new_account_gets_a_new_customer_number_and_a_known_one_keeps_its_own():
    erp = ErpSystem(1, ErpConfig.clean())
    created, known = run(erp, command("acc-u1", "c1"), command("acc-1", "c2", customer_number="C-10001"))
    assert created["kind"] == "CREATED" and created["customer_number"].startswith("C-9")
    assert created["credit_limit"] > 0 and created["command_id"] == "c1" and created["account_id"] == "acc-u1"
    assert known["kind"] == "UPDATED" and known["customer_number"] == "C-10001"


def test_a_resent_command_gets_the_same_answer_and_a_new_one_an_update():
    erp = ErpSystem(1, ErpConfig.clean())
    first, again, update = run(erp, command("acc-u1", "c1"), command("acc-u1", "c1"), command("acc-u1", "c2"))
    assert again["event_id"] == first["event_id"] and update["kind"] == "UPDATED"
    assert update["customer_number"] == first["customer_number"]


def test_deactivate_and_merge_answer_for_customers_the_erp_has():
    erp = ErpSystem(1, ErpConfig.clean())
    events = run(
        erp,
        command("acc-1", "c1", customer_number="C-10001"),
        command("acc-u1", "c2"),
        command("acc-u1", "c3", "MERGE", merged_into_account_id="acc-1"),
        command("acc-1", "c4", "DEACTIVATE"),
        command("acc-x", "c5", "DEACTIVATE"),  # never a customer: no answer
    )
    assert [e["kind"] for e in events] == ["UPDATED", "CREATED", "MERGED", "DEACTIVATED"]
    assert events[2]["merged_into_customer_number"] == "C-10001"
    assert erp.summary.customers.events == {"UPDATED": 1, "CREATED": 1, "MERGED": 1, "DEACTIVATED": 1}


def test_answers_come_after_the_customer_delay_and_suffer_the_erps_faults():
    erp = ErpSystem(3, ErpConfig.clean(customer_delay=2.0, jitter=0.0, duplicate_rate=1.0))
    erp.customers.on_command(command("acc-u1", "c1"), 100.0)
    assert erp.customers.due(101.0) == [] and erp.customers.next_due() == 102.0
    twice = erp.customers.due(102.0)
    assert len(twice) == 2 and twice[0] == twice[1]
    lossy = ErpSystem(3, ErpConfig.clean(customer_drop_rate=1.0))
    assert lossy.customers.on_command(command("acc-u1", "c1"), 100.0) == [] and lossy.summary.customers.dropped == 1
