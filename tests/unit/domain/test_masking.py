"""Personal data is masked wherever a person reads in passing; full payloads stay in the dead letter."""

from __future__ import annotations

import datetime as dt

import pytest

from app.domain.exceptions import retries
from app.domain.masking import MASK, mask_fields, mask_text, personal

NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
COORDS = retries.Coordinates("crm.public.contact", 1, 9)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("contact jane.doe@example.com bounced", "contact j***@example.com bounced"),
        ("call +49 30 1234567 today", "call *** today"),
        ("call (030) 123-4567", "call ***"),
        (
            "{'name': 'ACME GmbH', 'email': 'x@y.de', 'amount': '12.00'}",
            "{'name': '***', 'email': '***', 'amount': '12.00'}",
        ),
        (
            '{"billing_street": "Hauptstr. 1", "billing_city": "Berlin"}',
            '{"billing_street": "***", "billing_city": "***"}',
        ),
        ("first_name=Jane last_name=Doe id=003-1", "first_name=*** last_name=*** id=003-1"),
    ],
)
def test_emails_phones_and_personal_field_values_are_masked(text, masked):
    assert mask_text(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "crm.public.opportunity/2/1234567 at 2026-11-28T12:00:00+00:00",
        "schema id 12345 not found; epoch 1764331200000",
        "opp-42: MISSING_ERP_ITEM_CODE on line l-7 (amount 1234567.89 EUR)",
        "renamed: the field was renamed",
    ],
)
def test_ids_offsets_dates_and_amounts_are_left_alone(text):
    assert mask_text(text) == text


def test_structured_values_mask_personal_fields_at_any_depth():
    value = {"id": "003-1", "email": "jane@example.com", "bill_to": {"street": "Hauptstr. 1", "country": "DE"}}
    masked = mask_fields({"rows": [value], "note": "ask jane@example.com"})
    assert masked == {
        "rows": [{"id": "003-1", "email": MASK, "bill_to": {"street": MASK, "country": "DE"}}],
        "note": "ask j***@example.com",
    }
    assert personal("shipping_postal_code") and not personal("postal")


def test_a_quarantined_messages_detail_is_masked_but_its_original_bytes_are_kept():
    detail = "mapping failed for {'email': 'jane@example.com', 'phone': '+49 30 1234567', 'name': 'Jane Doe'}"
    original = b"\x00\x00\x00\x00\x07jane@example.com"
    record = retries.exception_record(COORDS, "MAPPING_ERROR", detail, b"k", original, [], None, NOW)
    assert "jane" not in record["detail"] and "1234567" not in record["detail"] and "Doe" not in record["detail"]
    assert record["original_value"] == original  # the access-controlled copy keeps everything, for replay
    dead = retries.dead_letter_headers([], COORDS, "MAPPING_ERROR", detail, record["exception_id"], NOW)
    assert "jane" not in retries.header(dead, "x-detail")
