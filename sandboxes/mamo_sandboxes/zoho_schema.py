"""The body of ``POST /books/v3/journals`` (and ``PUT /journals/{id}``) as a JSON schema, written by hand
from LEDGER_APIS.md §2.5: Zoho publishes no spec we keep (§2.12), so this is the contract the sandbox
checks request bodies against and the hook's tests check the hook's bodies against.

Writable fields only: read-only ones (``journal_id``, ``entry_number``, ``line_id`` on create, totals,
``bcy_amount``, timestamps) are refused. Amounts are JSON numbers, positive; their precision (two
decimals) is the sandbox's own check, as Zoho rounds to ``price_precision``.
"""

from __future__ import annotations

import functools

from jsonschema import Draft202012Validator

_ID = {"type": "string", "minLength": 1, "maxLength": 40}

LINE_ITEM_SCHEMA = {
    "type": "object",
    "required": ["account_id", "debit_or_credit", "amount"],
    "properties": {
        "line_id": _ID,  # on update only: the line being changed
        "account_id": _ID,
        "debit_or_credit": {"enum": ["debit", "credit"]},
        "amount": {"type": "number", "exclusiveMinimum": 0},
        "description": {"type": "string", "maxLength": 2000},
        "tax_id": _ID,
        "tax_exemption_id": _ID,
        "tax_authority_id": _ID,
        "customer_id": _ID,
        "project_id": _ID,
        "location_id": _ID,
        "tags": {"type": "array", "items": {"type": "object"}},
    },
    "additionalProperties": False,
}

JOURNAL_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Zoho Books API v3: a journal to create or update (LEDGER_APIS.md §2.5)",
    "type": "object",
    "required": ["journal_date", "line_items"],
    "properties": {
        "journal_date": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
        "reference_number": {"type": "string", "maxLength": 100},  # maximum unknown (§2.5) [A]
        "notes": {"type": "string", "maxLength": 2000},
        "journal_type": {"enum": ["both", "cash"]},
        "status": {"enum": ["draft", "published"]},
        "currency_id": _ID,
        "exchange_rate": {"type": "number", "exclusiveMinimum": 0},
        "location_id": _ID,
        "vat_treatment": {"type": "string"},
        "include_in_vat_return": {"type": "boolean"},
        "product_type": {"type": "string"},
        "custom_fields": {"type": "array", "items": {"type": "object"}},
        "line_items": {"type": "array", "minItems": 1, "items": LINE_ITEM_SCHEMA},
    },
    "additionalProperties": False,
}


@functools.cache
def journal_validator() -> Draft202012Validator:
    """A validator of ``JOURNAL_SCHEMA`` (numbers may be ``Decimal``: bodies are parsed exactly)."""
    Draft202012Validator.check_schema(JOURNAL_SCHEMA)
    return Draft202012Validator(JOURNAL_SCHEMA)


def journal_problems(body) -> list[str]:
    """Every way ``body`` breaks the schema, as ``where: what`` (empty when it conforms)."""
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(body)'}: {error.message}"
        for error in sorted(
            journal_validator().iter_errors(body), key=lambda e: [str(p) for p in e.absolute_path]
        )
    ]
