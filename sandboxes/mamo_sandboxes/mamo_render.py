"""How the Mamo sandbox writes a charge: the JSON of MAMO_API.md's Example 1 and Example 2.

A charge's descriptive part (payer, card, link, custom data, decline) comes from small pools chosen
by its 32-bit ``profile``; each pool entry's JSON is rendered once per renderer, so a list item is a
join of ready fragments and a few numbers. ``Renderer.list_item`` is the paging hot path;
``Renderer.fields`` is the reference it must match byte for byte.
"""

from __future__ import annotations

import json
import zlib
from array import array
from dataclasses import dataclass
from datetime import date, timedelta

from .mamo_data import (
    ABSENT,
    CURRENCIES,
    EPOCH_ORDINAL,
    FAILED,
    NULL,
    PAID_CODES,
    REFUND_INITIATED,
    STATUSES,
    ChargeTable,
    ZoneClock,
)

# --- pools for the descriptive fields -----------------------------------------------------------

CUSTOMERS = [
    ("Aisha Al Marri", "aisha.almarri@example.ae", "+971501234501", "-"),
    ("Omar Haddad", "omar.haddad@example.com", "+971552345602", ""),
    ("Fatima Khan", "fatima.khan@example.ae", "+971563456703", "Please gift wrap"),
    ("John Doe", "support@mamopay.com", "-", "-"),
    ("Priya Nair", "priya.nair@example.in", "+971504567804", "-"),
    ("Lukas Meyer", "lukas.meyer@example.de", "+4915112345678", ""),
    ("", "", "-", "-"),
    ("Mariam Saeed", "mariam.saeed@example.ae", "+971585678905", "Deliver after 6pm"),
    ("Chen Wei", "chen.wei@example.cn", "+971526789006", "-"),
    ("Sara Ahmed", "sara.ahmed@example.ae", "+971507890107", ""),
    ("Mamo User", "email@mamopay.com", "+971551234567", "Dolore voluptate possimus et."),
    ("Hassan Rahimi", "hassan.r@example.com", "+971568901208", "-"),
    ("Emily Clarke", "emily.clarke@example.co.uk", "+447700900123", ""),
    ("Yousef Al Habtoor", "yousef@example.ae", "+971509012309", "-"),
    ("Ananya Iyer", "ananya.iyer@example.in", "+971551012310", "Invoice to company"),
    ("Khalid Mansour", "k.mansour@example.sa", "+966501234567", "-"),
]
CARDS = [
    ("CREDIT VISA", "•••• 4242"),
    ("DEBIT VISA", "1111"),
    ("CREDIT MASTERCARD", "•••• 5454"),
    ("DEBIT MASTERCARD", "4444"),
    ("CREDIT AMERICAN EXPRESS", "•••• 0005"),
    ("DEBIT VISA", "•••• 1881"),
    ("CREDIT VISA", "3220"),
    ("PREPAID MASTERCARD", "•••• 9900"),
]
CUSTOM_DATA = [
    {},
    {},
    {},
    {"channel": "web"},
    {"channel": "pos", "terminal": "T-03"},
    {"internal_customer_id": "0114120d-c394-4cce-9cdb-4ccbae605748", "val1": True, "val2": "custom value"},
    {"order_ref": "web-checkout"},
    {},
]
DECLINES = [
    ("generic", "Unknown reason - user should contact their bank to find out"),
    ("insufficient_funds", "Insufficient funds"),
    ("do_not_honor", "Do not honor - user should contact their bank"),
    ("expired_card", "The card has expired"),
    ("3ds_authentication_failed", "3D Secure authentication failed"),
]
LINKS_PER_BUSINESS = 16


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


# --- rendering -----------------------------------------------------------------------------------


def number_compact(minor: int) -> str:
    """``100`` for whole amounts, two decimals otherwise (``33.99``, ``12.50``)."""
    whole, cents = divmod(minor, 100)
    return str(whole) if cents == 0 else f"{whole}.{cents:02d}"


def number_float(minor: int) -> str:
    """Ruby's Float#to_s: ``390.0``, ``12.5``, ``33.99``."""
    whole, cents = divmod(minor, 100)
    if cents % 10 == 0:
        return f"{whole}.{cents // 10}"
    return f"{whole}.{cents:02d}"


def two_decimals(minor: int) -> str:
    whole, cents = divmod(minor, 100)
    return f"{whole}.{cents:02d}"


@dataclass(frozen=True)
class Business:
    """Who a key belongs to, and the pre-rendered fragments of its charges."""

    number: int
    api_key: str
    business_name: str
    business_tag: str
    website: str

    @property
    def descriptor(self) -> str:
        letters = "".join(ch for ch in self.business_name if ch.isalnum())[:13] or "Merchant"
        return f"Mamo*{letters}"

    def link(self, index: int) -> tuple[str, str]:
        digest = zlib.crc32(f"{self.business_tag}/{index}".encode())
        return (
            f"MB-LINK-{digest:08X}{index:02X}",
            f"https://business.mamopay.com/pay/{self.business_tag}-{digest & 0xFFFFFF:06x}",
        )


class Renderer:
    """Charge JSON for one business under one set of wire settings and one "today".

    ``settings`` is read once here (duck-typed: the sandbox's ``MamoSettings``); build a new renderer
    when it changes. Every method returns JSON text for one charge, in the key order of
    MAMO_API.md's Example 1 (list items) or Example 2 (single charge, webhook bodies).
    """

    def __init__(self, business: Business, table: ChargeTable, settings, today: date):
        self.business, self.table, self.settings = business, table, settings
        self.today_ordinal = today.toordinal()
        self.zone = ZoneClock(settings.created_date_zone)
        self.number = number_float if settings.number_style == "float" else number_compact
        self.descriptor = _dumps(business.descriptor)
        self._links = [tuple(_dumps(v) for v in business.link(i)) for i in range(LINKS_PER_BUSINESS)]
        self._people: dict[tuple[int, bool, bool], tuple[str, str]] = {}
        self._custom = [_dumps(d) for d in CUSTOM_DATA]
        self._declines = [(_dumps(c), _dumps(m)) for c, m in DECLINES]
        self._day_prefix: dict[int, str] = {}
        self._settle_text: dict[int, str] = {}
        # the list fast path serves rows without overrides when no per-row option is on
        self.fast_list = not settings.refunds_array

    # pieces

    def money_string(self, minor: int, currency: str = "AED") -> str:
        whole, cents = divmod(minor, 100)
        if self.settings.money_thousands_separator:
            return f'"{currency} {whole:,}.{cents:02d}"'
        return f'"{currency} {whole}.{cents:02d}"'

    def _person(self, profile: int, international: bool, with_card_id: bool) -> tuple[str, str]:
        """JSON of ``customer_details`` and ``payment_method``, rendered once per pool entry."""
        key = (profile & 0x3FF, international, with_card_id)
        texts = self._people.get(key)
        if texts is None:
            name, email, phone, comment = CUSTOMERS[profile % len(CUSTOMERS)]
            card_type, last4 = CARDS[(profile >> 4) % len(CARDS)]
            method = {"type": card_type, "card_holder_name": name or "-", "card_last4": last4}
            method["origin"] = "International card" if international else "UAE card"
            if with_card_id:
                method = {"card_id": None, **method}
            details = {"name": name, "email": email, "phone_number": phone, "comment": comment}
            texts = self._people[key] = (_dumps(details), _dumps(method))
        return texts

    def _settled(self, row: int) -> bool:
        day = self.table.settle_day[row]
        return day != 0 and day <= self.today_ordinal

    def _settlement_date(self, row: int, webhook: bool) -> str:
        day = self.table.settle_day[row]
        if day == 0 or (self.settings.settlement_date_before_payout == "null" and day > self.today_ordinal):
            return "null"
        return self._date_text(day, webhook)

    def _date_text(self, day: int, webhook: bool) -> str:
        fmt = self.settings.settlement_date_format
        iso = fmt == "iso" or (fmt == "default" and webhook)
        d = date.fromordinal(day)
        return f'"{d.isoformat()}"' if iso else f'"{d.day:02d}/{d.month:02d}/{d.year:04d}"'

    def _settlement_amount(self, row: int, webhook: bool) -> str:
        value = self.table.settlement[row]
        if value == NULL or (self.settings.settlement_fields_filled == "after_settlement" and not self._settled(row)):
            return "null"
        style = self.settings.settlement_amount_type
        as_string = (
            style == "string"
            or (style == "default" and webhook)
            or (style == "mixed" and self.table.profile[row] & 0x80000000)
        )
        return f'"{two_decimals(value)}"' if as_string else self.number(value)

    def _fee(self, column: array, row: int) -> str:
        value = column[row]
        if value == NULL or (self.settings.settlement_fields_filled == "after_settlement" and not self._settled(row)):
            return "null"
        return self.money_string(value)

    def _refund_amount(self, row: int, in_list: bool) -> str:
        value = self.table.refund[row]
        if in_list and self.settings.refund_amount_type == "default":
            return f'"{number_float(value)}"'  # the list example's "0.0"
        return self.number(value)

    def refund_status(self, row: int) -> str:
        if self.table.refund[row] == 0:
            return '"No refund"'
        if self.table.status[row] == REFUND_INITIATED:
            return _dumps(self.settings.refund_status_initiated)
        return _dumps(self.settings.refund_status_refunded)

    def _subscription(self, row: int) -> tuple[str, str]:
        profile = self.table.profile[row]
        if (profile >> 12) % 32 != 0:
            return "null", "null"
        sub = f'"MPB-SUB-{zlib.crc32(self.table.id_of(row).encode()) & 0xFFFFFFFFFF:010X}"'
        created = self.zone.local_date(self.table.created[row])
        nxt = (created.replace(day=1) + timedelta(days=32)).replace(day=min(created.day, 28))
        return sub, f'"{nxt.day:02d}/{nxt.month:02d}/{nxt.year:04d}"'

    def _refunds_array(self, row: int) -> tuple[str, str]:
        t = self.table
        currency = CURRENCIES[t.currency[row]]
        entries = t.refund_log.get(row)
        if entries is None:
            entries = [(f"MPB-RFND-{t.id_of(row)[-10:]}", t.refund[row])] if t.refund[row] else []
        items = [
            f'{{"id":{_dumps(ref_id)},"amount":{self.number(amount)},"amount_currency":"{currency}",'
            f'"billing_amount":{self.number(amount)},"billing_amount_currency":"{currency}"}}'
            for ref_id, amount in entries
        ]
        refundable = t.amount[row] - t.refund[row] if t.status[row] in PAID_CODES else 0
        return "[" + ",".join(items) + "]", self.number(refundable)

    # whole charges

    def fields(self, row: int, kind: str, event_type: str | None = None) -> dict[str, str]:
        """Key → JSON text of one charge; ``kind`` is ``list``, ``single`` or ``webhook``."""
        t = self.table
        status = t.status[row]
        currency = CURRENCIES[t.currency[row]]
        profile = t.profile[row]
        webhook = kind == "webhook"
        international = currency != "AED" or bool(profile & 0x400)
        subscription_id, next_payment = self._subscription(row)
        link_id, link_url = self._links[(profile >> 18) % LINKS_PER_BUSINESS]
        if status == FAILED:
            error_code, error_message = self._declines[(profile >> 22) % len(self._declines)]
        else:
            error_code = error_message = "null"
        out: dict[str, str] = {
            "status": f'"{STATUSES[status]}"',
            "id": _dumps(t.id_of(row)),
            "amount": self.number(t.amount[row]),
            "amount_currency": f'"{currency}"',
            "refund_amount": self._refund_amount(row, kind == "list"),
            "refund_status": self.refund_status(row),
        }
        if not webhook:
            out["billing_descriptor"] = self.descriptor
        out["custom_data"] = self._custom[(profile >> 8) % len(self._custom)]
        out["created_date"] = f'"{self.zone.local_text(t.created[row])}"'
        out["subscription_id"] = subscription_id
        if kind == "list":
            out["next_payment_date"] = next_payment
        out["settlement_amount"] = self._settlement_amount(row, webhook)
        out["settlement_currency"] = '"AED"'
        out["settlement_date"] = self._settlement_date(row, webhook)
        out["customer_details"], out["payment_method"] = self._person(profile, international, kind != "list")
        if kind != "single" or self.settings.fee_fields_on_single:
            out["settlement_fee"] = self._fee(t.fee, row)
            out["settlement_vat"] = self._fee(t.vat, row)
            out["payment_link_id"], out["payment_link_url"] = link_id, link_url
        if kind != "list":
            out["external_id"] = "null"
        out["error_code"], out["error_message"] = error_code, error_message
        if kind != "list":
            out["next_payment_date"] = next_payment
        if webhook:
            out["event_type"] = _dumps(event_type or "charge.succeeded")
        if self.settings.refunds_array:
            out["refunds"], out["max_refund_amount"] = self._refunds_array(row)
        overrides = t.overrides.get(row)
        if overrides:
            for key, value in overrides.items():
                if value is ABSENT:
                    out.pop(key, None)
                else:
                    out[key] = _dumps(value)
        return out

    def render(self, row: int, kind: str = "list", event_type: str | None = None) -> str:
        if kind == "list" and self.fast_list and row not in self.table.overrides:
            return self.list_item(row)
        return "{" + ",".join(f'"{key}":{value}' for key, value in self.fields(row, kind, event_type).items()) + "}"

    def list_item(self, row: int) -> str:
        """``render(row, "list")`` for a row without overrides, in one format: the paging hot path.

        Must equal the general path byte for byte (tested); ``fields`` is the reference.
        """
        t = self.table
        status = t.status[row]
        currency = CURRENCIES[t.currency[row]]
        profile = t.profile[row]
        epoch = t.created[row]
        local = epoch + self.zone.offset(epoch)
        day, seconds = divmod(local, 86400)
        prefix = self._day_prefix.get(day)
        if prefix is None:
            d = date.fromordinal(EPOCH_ORDINAL + day)
            prefix = self._day_prefix[day] = f"{d.year:04d}-{d.month:02d}-{d.day:02d}"
        hours, seconds = divmod(seconds, 3600)
        minutes, seconds = divmod(seconds, 60)
        if (profile >> 12) % 32 == 0:
            subscription_id, next_payment = self._subscription(row)
        else:
            subscription_id = next_payment = "null"
        settle_day = t.settle_day[row]
        settlement_date = self._settle_text.get(settle_day)
        if settlement_date is None:
            settlement_date = self._settle_text[settle_day] = self._date_text(settle_day, False) if settle_day else "null"
        if settle_day > self.today_ordinal and self.settings.settlement_date_before_payout == "null":
            settlement_date = "null"
        details, method = self._person(profile, currency != "AED" or bool(profile & 0x400), False)
        link_id, link_url = self._links[(profile >> 18) % LINKS_PER_BUSINESS]
        if status == FAILED:
            error_code, error_message = self._declines[(profile >> 22) % len(self._declines)]
        else:
            error_code = error_message = "null"
        refund = t.refund[row]
        if refund == 0:
            refund_status = '"No refund"'
        else:
            refund_status = self.refund_status(row)
        return (
            f'{{"status":"{STATUSES[status]}","id":"{t.id_of(row)}","amount":{self.number(t.amount[row])},'
            f'"amount_currency":"{currency}","refund_amount":{self._refund_amount(row, True)},'
            f'"refund_status":{refund_status},"billing_descriptor":{self.descriptor},'
            f'"custom_data":{self._custom[(profile >> 8) % len(self._custom)]},'
            f'"created_date":"{prefix}-{hours:02d}-{minutes:02d}-{seconds:02d}",'
            f'"subscription_id":{subscription_id},"next_payment_date":{next_payment},'
            f'"settlement_amount":{self._settlement_amount(row, False)},"settlement_currency":"AED",'
            f'"settlement_date":{settlement_date},"customer_details":{details},"payment_method":{method},'
            f'"settlement_fee":{self._fee(t.fee, row)},"settlement_vat":{self._fee(t.vat, row)},'
            f'"payment_link_id":{link_id},"payment_link_url":{link_url},'
            f'"error_code":{error_code},"error_message":{error_message}}}'
        )
