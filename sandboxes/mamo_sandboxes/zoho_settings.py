"""The Zoho Books sandbox's settings: Zoho's documented limits (LEDGER_APIS.md §2) and every behaviour
Zoho leaves open (§6), each a setting with its default, plus injected faults."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from mamo_sandboxes.zoho_data import DATA_CENTRES, DEMO_USER

FAULT_KINDS = ("lost_response", "error", "rate_limit", "delay")


@dataclass
class ZohoSettings:
    """Documented values (§2.2) and the §6 defaults for what Zoho leaves open."""

    # --- accounts server (§2.2) ---
    access_token_seconds: int = 3600
    authorization_code_seconds: int = 120
    refresh_tokens_per_user: int = 20  # per user and client; the 21st evicts the oldest
    access_tokens_per_window: int = 10  # minted per refresh token in any window …
    access_token_window_seconds: int = 600  # … of 10 minutes; beyond: HTTP 400 {"error": "Access Denied"}
    active_access_tokens_per_refresh_token: int = 30  # the 31st evicts the oldest
    refresh_tokens_per_minute: int = 5  # created per user
    oauth_error_status: int = 200  # §6: a bad refresh token or code answers HTTP 200 invalid_code (or 400)
    signed_in_user: str = DEMO_USER  # who the consent page is "signed in" as when the form names no user
    locations: list = field(default_factory=lambda: list(DATA_CENTRES))  # data centres served
    # --- Books (§2.4–2.9, §6) ---
    default_journal_status: str = "draft"  # status omitted
    duplicate_reference: str = "accept"  # reference_number is not unique
    chart_default_filter: str = "AccountType.All"  # filter_by omitted on GET /chartofaccounts
    max_per_page: int = 200
    limit_per_minute: int = 100  # per organisation
    limit_per_day: int = 1000  # per organisation
    rate_limit_retry_after: bool = False  # §6: 429 without Retry-After (alternative: with)
    validate_requests: bool = True  # POST/PUT /journals bodies against zoho_schema.JOURNAL_SCHEMA
    faults: list = field(default_factory=list)

    CHOICES = {
        "default_journal_status": ("draft", "published"),
        "duplicate_reference": ("accept", "reject"),
        "chart_default_filter": ("AccountType.All", "AccountType.Active"),
        "oauth_error_status": (200, 400),
    }

    def update(self, changes: dict) -> None:
        known = {f.name for f in dataclasses.fields(self)}
        for key, value in changes.items():
            if key not in known:
                raise ValueError(f"unknown setting {key!r}; known: {sorted(known)}")
            current = getattr(self, key)
            if key == "faults":
                value = [check_fault(f) for f in value]
            elif key == "locations":
                unknown = set(value) - set(DATA_CENTRES)
                if unknown or not value:
                    raise ValueError(f"locations must be some of {sorted(DATA_CENTRES)}")
                value = list(value)
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
      connection breaks mid-response), ``500``, or ``timeout`` (the answer comes after ``delay_seconds``).
    - ``error``: answer ``status`` (default 503) without processing.
    - ``rate_limit``: answer 429 ``{"code": 45}`` without processing (``problem`` ``minute`` or ``day``).
    - ``delay``: wait ``delay_seconds`` before processing.

    ``path`` matches the start of the path after the data-centre prefix (``/books/v3/journals``,
    ``/oauth/v2/token``) or of the full path.
    """
    if not isinstance(fault, dict) or fault.get("kind") not in FAULT_KINDS:
        raise ValueError(f"a fault needs kind in {FAULT_KINDS}")
    out = {
        "method": None,
        "path": "",
        "times": 1,
        "mode": "drop",
        "status": 503,
        "problem": "minute",
        "delay_seconds": 0.0,
    } | fault
    if out["mode"] not in ("drop", "500", "timeout"):
        raise ValueError("a lost_response fault's mode is drop, 500 or timeout")
    if out["problem"] not in ("minute", "day"):
        raise ValueError("a rate_limit fault's problem is minute or day")
    return out
