"""The Zoho Books sandbox's settings: Zoho's documented limits (LEDGER_APIS.md §2) and every behaviour
Zoho leaves open (§6), each a setting with its default, plus injected faults."""

from __future__ import annotations

from dataclasses import dataclass, field

from mamo_sandboxes.common import SandboxSettings
from mamo_sandboxes.common import check_fault as common_check_fault
from mamo_sandboxes.zoho_data import DATA_CENTRES, DEMO_USER


@dataclass
class ZohoSettings(SandboxSettings):
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

    @staticmethod
    def check_fault(fault: dict) -> dict:
        return check_fault(fault)

    def checked(self, key: str, value):
        if key == "locations":
            unknown = set(value) - set(DATA_CENTRES)
            if unknown or not value:
                raise ValueError(f"locations must be some of {sorted(DATA_CENTRES)}")
            return list(value)
        return super().checked(key, value)


def check_fault(fault: dict) -> dict:
    """A fault (``common.check_fault``); a ``rate_limit`` fault answers 429 ``{"code": 45}`` (``problem``
    ``minute`` or ``day``).

    ``path`` matches the start of the path after the data-centre prefix (``/books/v3/journals``,
    ``/oauth/v2/token``) or of the full path.
    """
    out = common_check_fault(fault, {"problem": "minute"})
    if out["problem"] not in ("minute", "day"):
        raise ValueError("a rate_limit fault's problem is minute or day")
    return out
