"""Masking personal data in text meant for people: log lines, exception details, dead-letter headers.

Full payloads stay only in the access-controlled exception and dead-letter topics; everything a
person reads in passing (logs, the ops page, ``exceptions list``) goes through ``mask_text``.

What is recognised:

* e-mail addresses (``j***@example.com``: the domain stays, it is rarely personal and helps triage);
* phone numbers in international (``+49 30 1234567``) or bracketed (``(030) 1234567``) form;
* the value of a personal field in a ``key: value`` / ``'key': 'value'`` / ``key=value`` rendering
  of a record, as decoder and validation errors print them (names, e-mail, phone, address parts);
* every ``input_value=…`` of a pydantic validation error: it is the raw input of whatever field
  failed, personal or not, and the field name is on another line.

Free text that names a person without any of these shapes is not recognised; that is why details
are built from ids and reason codes, never from field values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MASK = "***"

PERSONAL_FIELDS = frozenset(
    {
        "name",
        "first_name",
        "last_name",
        "full_name",
        "contact_name",
        "email",
        "phone",
        "mobile",
        "mobile_phone",
        "fax",
        "street",
        "city",
        "postal_code",
        "zip",
        "address",
        "line1",
        "line2",
        "title",
    }
)
_ADDRESS_PREFIXES = ("billing_", "shipping_", "mailing_", "other_")

_EMAIL = re.compile(r"\b([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})\b")
_PHONE = re.compile(r"(?:\+\d{1,3}|\(\d{2,5}\))(?:[\s./-]?\(?\d{1,5}\)?){2,6}")
_KEY = "|".join(
    sorted({*PERSONAL_FIELDS, *(p + f for p in _ADDRESS_PREFIXES for f in PERSONAL_FIELDS)}, key=len, reverse=True)
)
# 'name': 'ACME GmbH' · "email": "a@b.c" · name=ACME · phone: +49 ... (quoted value up to its quote)
_FIELD = re.compile(
    rf"""(?P<k>['"]?\b(?:{_KEY})\b['"]?\s*[:=]\s*)(?:(?P<q>['"])(?:(?!(?P=q)).)*(?P=q)|[^\s,;)}}\]]+)""",
    re.IGNORECASE,
)


# pydantic: "[type=int_type, input_value='Janie Doe', input_type=str]" (a quoted string, or up to the next comma)
_INPUT_VALUE = re.compile(r"""(\binput_value=)(?:(['"])(?:\\.|(?!\2).)*\2|[^,\]\n]+)""")


def personal(field: str) -> bool:
    """True for a field that holds personal data (also its billing_/shipping_ address variants)."""
    f = field.lower()
    return f in PERSONAL_FIELDS or any(f.startswith(p) and f[len(p) :] in PERSONAL_FIELDS for p in _ADDRESS_PREFIXES)


def mask_text(text: str) -> str:
    """``text`` with e-mail addresses, phone numbers and personal field values masked."""
    if not text:
        return text
    text = _INPUT_VALUE.sub(lambda m: f"{m[1]}{MASK}", text)
    text = _PHONE.sub(MASK, text)
    text = _EMAIL.sub(lambda m: f"{m[1]}{MASK}@{m[2]}", text)
    return _FIELD.sub(lambda m: f"{m['k']}{m['q'] or ''}{MASK}{m['q'] or ''}", text)


def mask_fields(value: Any) -> Any:
    """A copy of a JSON-like value with personal fields' values masked and strings passed through ``mask_text``."""
    if isinstance(value, Mapping):
        return {k: (MASK if personal(str(k)) and v is not None else mask_fields(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_fields(v) for v in value]
    if isinstance(value, str):
        return mask_text(value)
    return value
