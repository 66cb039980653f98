"""The Xero sandbox's settings: every behaviour Xero leaves open (LEDGER_APIS.md §6), its faults, and
the Accounting API spec that request bodies are checked against (``spec_path``)."""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass, field
from numbers import Number
from pathlib import Path

import yaml
from jsonschema import FormatChecker
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from referencing import Registry
from referencing.jsonschema import DRAFT4

from mamo_sandboxes.common import SandboxSettings
from mamo_sandboxes.common import check_fault as common_check_fault


def _default_spec_path() -> str:
    """Xero's own OpenAPI file: ``$MAMO_XERO_SPEC``, else ``shared/specs`` beside the checkout.

    The spec is the vendor's data and is not part of this repository; where it cannot be found
    (an image built without it) the sandbox serves without validating request bodies.
    """
    if os.environ.get("MAMO_XERO_SPEC"):
        return os.environ["MAMO_XERO_SPEC"]
    relative = Path("shared") / "specs" / "xero" / "xero_accounting.yaml"
    for folder in Path(__file__).resolve().parents:
        if (folder / relative).is_file():
            return str(folder / relative)
    return str(Path(__file__).resolve().parents[3] / relative)


DEFAULT_SPEC_PATH = _default_spec_path()


@dataclass
class XeroSettings(SandboxSettings):
    """Every behaviour the vendor leaves open (LEDGER_APIS.md §6), as a setting with its default."""

    access_token_seconds: int = 1800
    refresh_grace_seconds: int = 1800  # the old refresh token works again this long after its first use
    refresh_idle_seconds: int = 60 * 86400  # an unused refresh token dies after 60 days
    # A refresh token used again inside the grace window: "grace" (each use succeeds with a new token,
    # each new token valid until used) | "single_use" (the second use answers invalid_grant).
    refresh_reuse: str = "grace"
    authorization_code_seconds: int = 300
    idempotency: str = "replay"  # a repeated Idempotency-Key: "replay" | "reject_different_body"
    unknown_account: str = "drop_with_warning"  # unknown AccountCode: "drop_with_warning" | "reject"
    default_line_amount_types: str = "Exclusive"  # LineAmountTypes omitted (spec wording)
    limit_concurrent: int = 5
    limit_per_minute: int = 60
    limit_per_day: int = 5000
    limit_app_per_minute: int = 10000
    require_json_accept: bool = True  # real Xero may answer XML without Accept: application/json
    # Check request bodies against Xero's spec: on when the spec is there (so the setting says what happens)
    validate_requests: bool = field(default_factory=lambda: os.path.isfile(DEFAULT_SPEC_PATH))
    spec_path: str = DEFAULT_SPEC_PATH
    faults: list = field(default_factory=list)

    CHOICES = {
        "refresh_reuse": ("grace", "single_use"),
        "idempotency": ("replay", "reject_different_body"),
        "unknown_account": ("drop_with_warning", "reject"),
        "default_line_amount_types": ("Exclusive", "Inclusive", "NoTax"),
    }

    @staticmethod
    def check_fault(fault: dict) -> dict:
        return check_fault(fault)


def check_fault(fault: dict) -> dict:
    """A fault (``common.check_fault``); a ``rate_limit`` fault answers 429 with ``retry_after`` and
    ``problem`` (Minute, Daily, …), as Xero's ``X-Rate-Limit-Problem``. A ``delay`` holds a concurrency slot."""
    return common_check_fault(fault, {"retry_after": 1, "problem": "Minute"})


# --- spec validation --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _spec_registry(path: str) -> tuple[str, Registry]:
    with open(path, encoding="utf-8") as fh:
        spec = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    uri = f"urn:xero-spec:{hashlib.sha256(path.encode()).hexdigest()[:12]}"
    return uri, Registry().with_resource(uri, DRAFT4.create_resource(spec))


def _format_checker() -> FormatChecker:
    """OAS 3.0 formats, with ``float``/``double`` met by any JSON number (bodies are parsed as Decimal)."""
    checker = FormatChecker()
    checker.checkers = dict(oas30_format_checker.checkers)
    for number_format in ("float", "double"):
        checker.checks(number_format)(lambda value: isinstance(value, Number))
    return checker


@functools.lru_cache(maxsize=32)
def spec_validator(schema: str, path: str = DEFAULT_SPEC_PATH) -> OAS30Validator:
    """An OAS 3.0 validator for ``components.schemas.<schema>`` of the spec at ``path`` ($refs resolved)."""
    uri, registry = _spec_registry(path)
    return OAS30Validator(
        {"$ref": f"{uri}#/components/schemas/{schema}"}, registry=registry, format_checker=_format_checker()
    )
