"""Worker logs: one JSON object per line, with the deal's context and no personal data."""

from __future__ import annotations

import io
import json
import logging
import logging.config

import pytest

from app.observe import logs


@pytest.fixture
def json_logging():
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    logging.config.dictConfig(logs.logging_config("info", "json"))
    out = io.StringIO()
    [handler] = [h for h in root.handlers if h.name == "default"]
    handler.setStream(out)
    yield lambda: [json.loads(line) for line in out.getvalue().splitlines()]
    root.handlers[:], root.level = saved


def test_a_line_logged_while_handling_an_event_carries_its_deal_and_coordinates(json_logging):
    log = logging.getLogger("app.agents.deals")
    with logs.context(correlation_id="opp-7", source="sync.deal-changes/3/41"):
        log.info("sent %s %s", "CreateSalesOrder", "opp-7:create:1", extra={"command_id": "opp-7:create:1"})
        with logs.context(reason_code="UNKNOWN_PRODUCT"):
            log.warning("exception raised")
    log.info("outside any event")
    first, second, third = json_logging()
    assert first["message"] == "sent CreateSalesOrder opp-7:create:1" and first["level"] == "INFO"
    assert (first["correlation_id"], first["source"], first["command_id"]) == (
        "opp-7",
        "sync.deal-changes/3/41",
        "opp-7:create:1",
    )
    assert first["logger"] == "app.agents.deals" and "ts" in first
    assert second["reason_code"] == "UNKNOWN_PRODUCT" and second["correlation_id"] == "opp-7"
    assert "correlation_id" not in third


def test_personal_data_in_a_message_or_its_arguments_is_masked(json_logging):
    logging.getLogger("x").error("decode failed: %r", {"email": "jane@example.com", "phone": "+49 30 1234567"})
    [line] = json_logging()
    assert "jane" not in line["message"] and "1234567" not in line["message"]


def test_an_unknown_format_is_refused():
    with pytest.raises(ValueError, match="json or text"):
        logs.logging_config("info", "xml")


def test_the_registry_clients_request_lines_stay_out_of_the_log_but_their_warnings_do_not(json_logging):
    for name in ("httpx", "httpx2"):
        logging.getLogger(name).info("HTTP Request: GET http://registry/subjects/x/versions")
        logging.getLogger(name).warning("connection reset")
    assert [(r["logger"], r["message"]) for r in json_logging()] == [
        ("httpx", "connection reset"),
        ("httpx2", "connection reset"),
    ]


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_a_logged_traceback_is_masked_too_pydantic_input_values_included(fmt, capsys):
    from pydantic import BaseModel

    class Contact(BaseModel):
        age: int

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    logging.config.dictConfig(logs.logging_config("info", fmt))
    try:
        email, phone, name = "janie.doe" + "@example.com", "+49 30 " + "1234567", "Janie" + " Doe"
        try:
            raise ValueError(f"could not reach {email} or {phone}")
        except ValueError:
            logging.getLogger("app.agents.crm_ingest").exception("handling failed")
        try:
            Contact(age=name)
        except ValueError:
            logging.getLogger("app.agents.crm_ingest").exception("validation failed")
    finally:
        root.handlers[:], root.level = saved
    out = capsys.readouterr().out
    assert "Traceback" in out and "handling failed" in out and "validation failed" in out
    assert "janie.doe" not in out and "1234567" not in out and "Janie Doe" not in out, out
    assert "j***@example.com" in out and "input_value=***" in out
