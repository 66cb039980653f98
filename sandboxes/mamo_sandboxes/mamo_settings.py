"""The Mamo sandbox's settings: every unknown of MAMO_API.md §12, with the documented default."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import ClassVar, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .mamo_data import CURRENCIES, DEFAULT_FX_RATES, DEFAULT_HOLIDAYS, DUBAI, FeePlan


class MamoSettings(BaseModel):
    """Every §12 assumption of MAMO_API.md, with its default; the row number is in each comment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # 1: order of GET /charges
    order: Literal["newest_first", "oldest_first", "unordered"] = "newest_first"
    # 2, 3: page sizes; above the maximum the size is cut, or answered with 422
    default_per_page: int = Field(10, ge=1)
    max_per_page: int = Field(100, ge=1)
    per_page_over_max: Literal["cut", "reject"] = "cut"
    # 4: a page past the last one: 200 with data [] and next_page null, or 404
    page_past_end: Literal["empty", "not_found"] = "empty"
    # 5: page < 1 or not a number: treated as page 1, or 422
    bad_page: Literal["first", "reject"] = "first"
    # 6: undocumented query parameters are always ignored (no setting)
    # 7: the zone of created_date's wall-clock time
    created_date_zone: str = DUBAI
    # 8: default = DD/MM/YYYY in API responses and YYYY-MM-DD in webhooks; dmy / iso = that form everywhere
    settlement_date_format: Literal["default", "dmy", "iso"] = "default"
    # 9: settlement_date before the payout: the scheduled date, or null until settled
    settlement_date_before_payout: Literal["scheduled", "null"] = "scheduled"
    settlement_business_days: int = Field(5, ge=0)
    holidays: list[date] = Field(default_factory=lambda: list(DEFAULT_HOLIDAYS))
    # 10: settlement_fee, settlement_vat and the payment link fields on GET /charges/{id}
    fee_fields_on_single: bool = True
    # 11: fee, VAT and settlement amount filled at capture, or only once the settlement date has come
    settlement_fields_filled: Literal["at_capture", "after_settlement"] = "at_capture"
    # 12: settlement_amount: number in API responses and string in webhooks; string everywhere; mixed per charge
    settlement_amount_type: Literal["default", "string", "mixed"] = "default"
    # 13: refund_amount: "0.0"-style string in the list and a number elsewhere; or a number everywhere
    refund_amount_type: Literal["default", "number"] = "default"
    # 14, 15, 18: refunds never become rows; refund_amount is cumulative; settlement_amount unchanged (no setting)
    # 16: after a refund the status is refund_initiated, then refunded after the delay; a partial refund
    # may instead leave the charge captured
    refund_settle_seconds: float = Field(3600.0, ge=0)
    partial_refund_status: Literal["refunded", "captured"] = "refunded"
    refund_window_days: int = Field(183, ge=0)  # Mamo: refunds for six months after the payment
    # 17: refund_status once refunded ("No refund" before); alternatives such as "pending", "failed"
    refund_status_initiated: str = "success"
    refund_status_refunded: str = "success"
    # 19: fees of charges not seeded with explicit values: Growth plan on the AED gross
    fee_percent: Decimal = Decimal("2.9")
    fee_fixed: Decimal = Decimal("1.00")
    fee_vat_percent: Decimal = Decimal("5")
    fx_rates: dict[str, Decimal] = Field(default_factory=lambda: {k: Decimal(v) for k, v in DEFAULT_FX_RATES.items()})
    # 20: money strings: "AED 1234.50", or "AED 1,234.50"
    money_thousands_separator: bool = False
    # 21: numbers: 100 / 33.99 / 12.50 (compact), or 390.0 / 12.5 (float, Ruby style)
    number_style: Literal["compact", "float"] = "compact"
    # 22: held charges are processing until captured, voided after release (set a charge's status)
    # 23: rate limiting: off, or 429 after N calls per window, with Retry-After
    rate_limit_per_minute: int | None = Field(None, ge=1)
    rate_limit_window_seconds: float = Field(60.0, gt=0)
    # 24: server faults: none, or every Nth API request answered with the next status of fault_statuses
    fault_every: int | None = Field(None, ge=1)
    fault_statuses: list[int] = Field(default_factory=lambda: [500, 502, 503])
    # 25, 26: webhook deliveries: one attempt each, in order, at once; or each sent N times, held back
    # some seconds (what is queued meanwhile is one batch), the batch shuffled, every Nth attempt dropped
    webhook_repeat: int = Field(1, ge=1)
    webhook_delay_seconds: float = Field(0.0, ge=0)
    webhook_reorder: bool = False
    webhook_drop_every: int | None = Field(None, ge=1)
    webhook_timeout_seconds: float = Field(10.0, gt=0)  # the registration ping and each delivery
    # Whether the registration ping carries the auth_header as Authorization (undocumented: both happen)
    webhook_ping_authorization: bool = True
    # 27: /payments served as an alias of /charges
    serve_payments: bool = True
    # 28: refunds[] and max_refund_amount on the charge
    refunds_array: bool = False
    # 29: a link surcharge is inside amount (no setting)
    # not a §12 row: insert charges in the middle of a scan, after every N list pages served
    insert_every_pages: int | None = Field(None, ge=1)
    insert_count: int = Field(1, ge=1)

    @field_validator("created_date_zone")
    @classmethod
    def _zone_exists(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ValueError, KeyError) as exc:  # ZoneInfoNotFoundError is a KeyError
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("fault_statuses")
    @classmethod
    def _faults_are_5xx(cls, value: list[int]) -> list[int]:
        if not value or any(not 500 <= code <= 599 for code in value):
            raise ValueError("fault_statuses must be a non-empty list of 5xx codes")
        return value

    @field_validator("fx_rates")
    @classmethod
    def _rates_known(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        unknown = set(value) - set(CURRENCIES)
        if unknown:
            raise ValueError(f"unknown currencies {sorted(unknown)}")
        return {**{k: Decimal(v) for k, v in DEFAULT_FX_RATES.items()}, **value}

    @property
    def fee_plan(self) -> FeePlan:
        return FeePlan(self.fee_percent, int(self.fee_fixed * 100), self.fee_vat_percent)

    # settings that change a charge's JSON (the rest act on paging, errors or new charges)
    RENDER_FIELDS: ClassVar[tuple[str, ...]] = (
        "created_date_zone", "settlement_date_format", "settlement_date_before_payout", "fee_fields_on_single",
        "settlement_fields_filled", "settlement_amount_type", "refund_amount_type", "refund_status_initiated",
        "refund_status_refunded", "money_thousands_separator", "number_style", "refunds_array",
    )  # fmt: skip
