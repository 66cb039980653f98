"""The Xero sandbox's settings: every behaviour Xero leaves open (LEDGER_APIS.md §6), its faults, and
the Accounting API spec that request bodies are checked against (``spec_path``)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
from dataclasses import dataclass, field
from numbers import Number

import yaml
from jsonschema import FormatChecker
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from referencing import Registry
from referencing.jsonschema import DRAFT4

DEFAULT_SPEC_PATH = os.environ.get("MAMO_XERO_SPEC", "/work/shared/specs/xero/xero_accounting.yaml")
FAULT_KINDS = ("lost_response", "error", "rate_limit", "delay")


@dataclass
class XeroSettings:
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
    validate_requests: bool = True
    spec_path: str = DEFAULT_SPEC_PATH
    faults: list = field(default_factory=list)

    CHOICES = {
        "refresh_reuse": ("grace", "single_use"),
        "idempotency": ("replay", "reject_different_body"),
        "unknown_account": ("drop_with_warning", "reject"),
        "default_line_amount_types": ("Exclusive", "Inclusive", "NoTax"),
    }

    def update(self, changes: dict) -> None:
        known = {f.name: f for f in dataclasses.fields(self)}
        for key, value in changes.items():
            if key not in known:
                raise ValueError(f"unknown setting {key!r}; known: {sorted(known)}")
            current = getattr(self, key)
            if key == "faults":
                value = [check_fault(f) for f in value]
            elif isinstance(current, bool) or isinstance(current, str):
                if type(value) is not type(current):
                    raise ValueError(f"setting {key!r} must be a {type(current).__name__}")
            elif isinstance(current, int) and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"setting {key!r} must be an integer")
            if key in self.CHOICES and value not in self.CHOICES[key]:
                raise ValueError(f"setting {key!r} must be one of {self.CHOICES[key]}")
            setattr(self, key, value)

    def public(self) -> dict:
        return dataclasses.asdict(self)


def check_fault(fault: dict) -> dict:
    """A fault: ``kind`` (lost_response | error | rate_limit | delay), ``method``, ``path``, ``times`` …

    - ``lost_response``: the request is processed, then the answer is lost: ``mode`` ``drop`` (the
      connection breaks mid-response), ``500`` (an error is answered instead), or ``timeout`` (the
      answer comes after ``delay_seconds``).
    - ``error``: answer ``status`` (default 503) without processing.
    - ``rate_limit``: answer 429 with ``retry_after`` and ``problem`` (Minute, Daily, …) without processing.
    - ``delay``: wait ``delay_seconds`` before processing (holds a concurrency slot).
    """
    if not isinstance(fault, dict) or fault.get("kind") not in FAULT_KINDS:
        raise ValueError(f"a fault needs kind in {FAULT_KINDS}")
    out = {
        "method": None,
        "path": "",
        "times": 1,
        "mode": "drop",
        "status": 503,
        "retry_after": 1,
        "problem": "Minute",
        "delay_seconds": 0.0,
    } | fault
    if out["mode"] not in ("drop", "500", "timeout"):
        raise ValueError("a lost_response fault's mode is drop, 500 or timeout")
    return out


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
