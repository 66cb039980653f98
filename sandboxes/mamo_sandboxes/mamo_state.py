"""The Mamo sandbox's state and behaviour, without HTTP: businesses, charges, webhooks, settings, the clock.

``MamoSandbox.handle`` answers one request to ``/manage_api/v1`` exactly as the HTTP app serves it;
the other public methods are the admin operations (the ``/_sandbox`` API calls them). A charge that
changes through the sandbox (a refund, an admin add or patch) queues a webhook event for each
registered webhook of its business that enabled it; ``mamo_webhooks.Deliverer`` sends them.
"""

from __future__ import annotations

import heapq
import json
import math
import threading
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from .common import Clock, SlidingWindowLimiter
from .mamo_data import (
    ABSENT,
    CURRENCIES,
    CURRENCY_CODE,
    DEFAULT_CURRENCY_WEIGHTS,
    DEFAULT_STATUS_WEIGHTS,
    DUBAI,
    NULL,
    PAID_CODES,
    PROCESSING,
    REFUND_INITIATED,
    REFUNDED,
    STATUS_CODE,
    STATUSES,
    ChargeColumns,
    ChargeTable,
    ZoneClock,
    add_business_days,
    generate,
    parse_created_date,
    parse_minor,
    parse_settlement_date,
    to_aed,
)
from .mamo_render import Business, Renderer
from .mamo_settings import MamoSettings
from .mamo_webhooks import Deliverer, Delivery, Webhook, new_webhook_id, ping, validate

RESOURCES = ("charges", "payments")


class SandboxError(Exception):
    """An admin call the sandbox refuses; ``status`` is the HTTP status of the admin answer."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


class RefundRefused(SandboxError):
    """Mamo's 422 "Can not refund this payment"."""


@dataclass
class Reply:
    """One answer of the Mamo API: status, body bytes, extra headers (``Content-Type`` overrides JSON)."""

    status: int
    body: bytes
    headers: dict[str, str] | None = None


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str).encode()


UNAUTHORIZED = json_bytes({"messages": ["Unauthorized"], "error_code": "UNAUTHORIZED"})
CHARGE_NOT_FOUND = json_bytes({"messages": ["Charge record was not found"], "error_code": "RECORD_NOT_FOUND"})
PATH_NOT_FOUND = json_bytes({"messages": ["Not Found"], "error_code": "NOT_FOUND"})
PAGE_NOT_FOUND = json_bytes({"messages": ["Page not found"], "error_code": "NOT_FOUND"})
WEBHOOK_NOT_FOUND = json_bytes({"messages": ["Merchant::Webhook record was not found"],
                                "error_code": "RECORD_NOT_FOUND"})  # fmt: skip
UNREACHABLE = json_bytes({"messages": ["Webhook is unreachable"], "error_code": "UNPROCESSABLE ENTITY"})
TOO_MANY = json_bytes({"messages": ["Too many requests"], "error_code": "TOO_MANY_REQUESTS"})
CANNOT_REFUND = json_bytes({"messages": ["Can not refund this payment"], "error_code": "UNPROCESSABLE ENTITY"})
FAULT_BODIES = {
    500: (json_bytes({"status": 500, "error": "Internal Server Error"}), "application/json"),
    502: (b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>",
          "text/html"),
    503: (b"<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>", "text/html"),
}  # fmt: skip


def _validation_error(*errors: str) -> Reply:
    return Reply(422, json_bytes({"messages": ["See errors"], "error_code": "VALIDATION_ERROR", "errors": list(errors)}))


class MamoSandbox:
    """The whole sandbox: businesses keyed by API key, their charges, the settings and the clock.

    Thread-safe: every public method holds one lock, so tests may drive it in-process while a
    server thread serves it.
    """

    def __init__(self, *, clock: Clock | None = None, settings: MamoSettings | None = None):
        self.clock = clock or Clock()
        self.lock = threading.RLock()
        self._deliverer: Deliverer | None = None
        self._fresh(settings)

    # A saved sandbox (``pickle``) keeps its webhooks but not the delivery thread, its queue or its
    # attempts: a loaded one starts a new thread on its first delivery.
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_deliverer"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    @property
    def deliverer(self) -> Deliverer:
        with self.lock:
            if self._deliverer is None:
                self._deliverer = Deliverer(lambda: self.settings)
            return self._deliverer

    def _fresh(self, settings: MamoSettings | None = None) -> None:
        self.settings = settings or MamoSettings()
        self.settings_version = 0
        self.businesses: dict[str, Business] = {}  # by API key
        self.tables: dict[str, ChargeTable] = {}  # by API key
        self.keys_by_tag: dict[str, str] = {}
        self.stats: Counter[str] = Counter()
        self._limiter = self._new_limiter()
        self._due: list[tuple[float, str, int]] = []  # (when, api key, row): refund_initiated → refunded
        self._due_at: dict[tuple[str, int], float] = {}
        self._renderers: dict[str, tuple[object, Renderer]] = {}
        self._pages_served: Counter[str] = Counter()
        self.webhooks: dict[str, dict[str, Webhook]] = {}  # by API key, then webhook id

    def _new_limiter(self) -> SlidingWindowLimiter:
        s = self.settings
        return SlidingWindowLimiter(self.clock, s.rate_limit_per_minute, s.rate_limit_window_seconds)

    # --- admin: settings, businesses, clock ---------------------------------------------------

    def reset(self) -> None:
        with self.lock:
            self.clock.reset()
            self._fresh()
            if self._deliverer is not None:
                self._deliverer.reset()

    def update_settings(self, **changes: Any) -> MamoSettings:
        """Change some settings (``ValidationError`` on a bad one, leaving all unchanged)."""
        with self.lock:
            merged = MamoSettings.model_validate({**self.settings.model_dump(), **changes})
            if any(getattr(merged, name) != getattr(self.settings, name) for name in MamoSettings.RENDER_FIELDS):
                self.settings_version += 1
            self.settings = merged
            self._limiter = self._new_limiter()
            return merged

    def add_business(
        self, api_key: str, business_name: str, *, business_tag: str | None = None, website: str | None = None
    ) -> Business:
        with self.lock:
            tag = business_tag or "".join(ch for ch in business_name.lower() if ch.isalnum()) or "business"
            if api_key in self.businesses:
                raise SandboxError("a business with this API key exists", 409)
            if tag in self.keys_by_tag:
                raise SandboxError(f"business tag {tag!r} exists", 409)
            business = Business(
                number=len(self.businesses) + 1,
                api_key=api_key,
                business_name=business_name,
                business_tag=tag,
                website=website or f"https://{tag}.example.ae",
            )
            self.businesses[api_key] = business
            self.tables[api_key] = ChargeTable(business.number)
            self.keys_by_tag[tag] = api_key
            return business

    def business(self, tag: str) -> Business:
        key = self.keys_by_tag.get(tag)
        if key is None:
            raise SandboxError(f"no business {tag!r}", 404)
        return self.businesses[key]

    def advance_clock(self, seconds: float) -> datetime:
        with self.lock:
            self.clock.advance(seconds)
            return self.clock.now()

    def today(self) -> date:
        """Today in Dubai, where Mamo settles."""
        return self.clock.now().astimezone(ZoneInfo(DUBAI)).date()

    # --- admin: charges -----------------------------------------------------------------------

    def generate(
        self,
        tag: str,
        *,
        seed: int,
        count: int,
        start: datetime | None = None,
        end: datetime | None = None,
        tz: str = DUBAI,
        status_weights: dict[str, float] | None = None,
        currency_weights: dict[str, float] | None = None,
    ) -> list[str]:
        """Append ``count`` seeded charges created in ``[start, end)`` (wall-clock in ``tz``; default: the
        90 days before now) and pre-render their list JSON. Returns the first and last new id."""
        with self.lock:
            business = self.business(tag)
            if end is None:
                end = self.clock.now().astimezone(ZoneInfo(tz)).replace(tzinfo=None, microsecond=0)
            if start is None:
                start = end - timedelta(days=90)
            s = self.settings
            columns = generate(
                seed, count, start, end, tz=tz, plan=s.fee_plan, fx_rates=s.fx_rates, holidays=s.holidays,
                settlement_days=s.settlement_business_days,
                status_weights=status_weights or DEFAULT_STATUS_WEIGHTS,
                currency_weights=currency_weights or DEFAULT_CURRENCY_WEIGHTS,
            )  # fmt: skip
            table = self.tables[business.api_key]
            rows = table.add_rows(columns)
            renderer = self._renderer(business.api_key)
            cache = table.cache
            for row in rows:
                cache[row] = renderer.render(row).encode()
            table.ascending()  # sort now rather than on the first page served
            return [table.id_of(rows[0]), table.id_of(rows[-1])] if rows else []

    def add_charges(self, tag: str, charges: list[dict]) -> list[str]:
        """Add explicit charges, each a Mamo charge object with any subset of fields (see ``_row_values``)."""
        with self.lock:
            business = self.business(tag)
            table = self.tables[business.api_key]
            ids = []
            for fields in charges:
                charge_id = fields.get("id")
                if isinstance(charge_id, str) and table.row_of(charge_id) is not None:
                    raise SandboxError(f"charge {charge_id} exists", 409)
                values, overrides = self._row_values(fields, table, None)
                columns = ChargeColumns()
                columns.append(**values)
                (row,) = table.add_rows(columns, [charge_id if isinstance(charge_id, str) else None])
                if overrides:
                    table.overrides[row] = overrides
                ids.append(table.id_of(row))
                self._announce(business.api_key, row, status_event(table.status[row]))
            return ids

    def update_charge(self, tag: str, charge_id: str, fields: dict) -> str:
        """Set fields of a charge (status, amounts, dates, anything); returns its GET /charges/{id} JSON."""
        with self.lock:
            business = self.business(tag)
            table = self.tables[business.api_key]
            row = self._row(table, charge_id)
            self._apply_due()
            before = (table.status[row], table.refund[row])
            values, overrides = self._row_values(fields, table, row)
            for name, value in values.items():
                getattr(table, name)[row] = value
            if "created" in values:
                table.set_created(row, values["created"])
            kept = {k: v for k, v in table.overrides.get(row, {}).items() if k not in fields}
            kept.update(overrides)
            if kept:
                table.overrides[row] = kept
            else:
                table.overrides.pop(row, None)
            table.touch(row)
            if table.refund[row] > before[1]:
                self._announce(business.api_key, row, refund_event(table.status[row]))
            elif table.status[row] != before[0]:
                self._announce(business.api_key, row, status_event(table.status[row]))
            return self._renderer(business.api_key).render(row, "single")

    def refund(self, tag: str, charge_id: str, amount: object) -> dict:
        """Refund ``amount`` (major units) of a charge, as ``POST /charges/{id}/refunds`` does."""
        with self.lock:
            business = self.business(tag)
            reply = self._refund(business, charge_id, amount)
            if reply.status == 404:
                raise SandboxError(f"no charge {charge_id}", 404)
            if reply.status != 200:
                raise RefundRefused(reply.body.decode())
            return json.loads(reply.body, parse_float=Decimal)

    def charge_json(self, tag: str, charge_id: str, kind: str = "single", event_type: str | None = None) -> str:
        """One charge's JSON as the API would write it: ``kind`` is ``list``, ``single`` or ``webhook``."""
        with self.lock:
            business = self.business(tag)
            self._apply_due()
            table = self.tables[business.api_key]
            return self._renderer(business.api_key).render(self._row(table, charge_id), kind, event_type)

    def charge(self, tag: str, charge_id: str, kind: str = "single", event_type: str | None = None) -> dict:
        """``charge_json`` parsed, numbers as ``Decimal``."""
        return json.loads(self.charge_json(tag, charge_id, kind, event_type), parse_float=Decimal)

    def charge_ids(self, tag: str) -> list[str]:
        """Every charge id of the business, newest first."""
        with self.lock:
            table = self.tables[self.business(tag).api_key]
            return [table.id_of(row) for row in reversed(table.ascending())]

    def _row(self, table: ChargeTable, charge_id: str) -> int:
        row = table.row_of(charge_id)
        if row is None:
            raise SandboxError(f"no charge {charge_id}", 404)
        return row

    def _row_values(self, fields: dict, table: ChargeTable, row: int | None) -> tuple[dict, dict]:
        """Column values and verbatim overrides for explicit charge fields.

        A field that parses goes to its column (so settings still shape how it is written); one
        that does not is served verbatim, as are fields without a column. ``_raw`` (an object) is
        served verbatim as given and ``_absent`` (a list of names) removes fields. Missing fields of
        a new charge get defaults: captured AED 100, created now, plan fees, net and T+N settlement.
        For an update only the given fields change (and fees are filled when a charge becomes paid).
        """
        s = self.settings
        values: dict[str, int] = {}
        overrides: dict[str, object] = {}
        fields = dict(fields)
        raw = fields.pop("_raw", {}) or {}
        absent = fields.pop("_absent", []) or []
        fields.pop("id", None)
        zone = ZoneClock(s.created_date_zone)

        def put(name: str, column: str, value: int | None) -> None:
            if value is None:
                overrides[name] = fields[name]
            else:
                values[column] = value

        if "status" in fields:
            put("status", "status", STATUS_CODE.get(fields["status"]))
            if "status" in overrides:
                values["status"] = PROCESSING
        if "amount_currency" in fields:
            put("amount_currency", "currency", CURRENCY_CODE.get(fields["amount_currency"]))
        if "amount" in fields:
            put("amount", "amount", parse_minor(fields["amount"]))
        if "refund_amount" in fields:
            put("refund_amount", "refund", parse_minor(fields["refund_amount"]))
        if "created_date" in fields:
            local = parse_created_date(fields["created_date"])
            put("created_date", "created", None if local is None else zone.to_epoch(local))
        for name, column in (("settlement_amount", "settlement"), ("settlement_fee", "fee"), ("settlement_vat", "vat")):
            if name in fields:
                put(name, column, NULL if fields[name] is None else parse_minor(fields[name]))
        if "settlement_date" in fields:
            value = fields["settlement_date"]
            day = None if value is None else parse_settlement_date(value)
            put("settlement_date", "settle_day", 0 if value is None else day and day.toordinal())
        column_fields = {"status", "amount_currency", "amount", "refund_amount", "created_date", "settlement_amount",
                         "settlement_fee", "settlement_vat", "settlement_date"}  # fmt: skip
        overrides.update({k: v for k, v in fields.items() if k not in column_fields})
        overrides.update(raw)
        overrides.update({name: ABSENT for name in absent})

        def current(column: str, default: int) -> int:
            if column in values:
                return values[column]
            return default if row is None else getattr(table, column)[row]

        status = current("status", STATUS_CODE["captured"])
        currency = current("currency", CURRENCY_CODE["AED"])
        amount = current("amount", 10_000)
        created = current("created", int(self.clock.time()))
        if row is None:
            values.setdefault("status", status)
            values.setdefault("currency", currency)
            values.setdefault("amount", amount)
            values.setdefault("created", created)
            values.setdefault("refund", 0)
            values["profile"] = (len(table) * 2654435761) & 0xFFFFFFFF | 0x1000  # bit 12: no subscription
        paid = status in PAID_CODES
        fee_missing = current("fee", NULL) == NULL and "fee" not in values
        if paid and (row is None or fee_missing):
            gross = to_aed(amount, CURRENCIES[currency], s.fx_rates)
            fee, vat = s.fee_plan.fee_and_vat(gross)
            fee, vat = values.setdefault("fee", fee), values.setdefault("vat", vat)
            if fee != NULL and vat != NULL:
                values.setdefault("settlement", gross - fee - vat)
            if current("settle_day", 0) == 0 and "settle_day" not in values:
                local_day = ZoneClock(DUBAI).local_date(created)
                values["settle_day"] = add_business_days(local_day, s.settlement_business_days, frozenset(s.holidays)).toordinal()
        if row is None:
            for column, default in (("settlement", NULL), ("fee", NULL), ("vat", NULL), ("settle_day", 0)):
                values.setdefault(column, default)
        return values, overrides

    # --- rendering ----------------------------------------------------------------------------

    def _renderer(self, api_key: str) -> Renderer:
        """The business's renderer for the current settings (and today, when a setting depends on it).

        A new renderer empties the table's cache of rendered list items.
        """
        s = self.settings
        time_dependent = s.settlement_date_before_payout == "null" or s.settlement_fields_filled == "after_settlement"
        today = self.today()
        signature = (self.settings_version, today if time_dependent else None)
        cached = self._renderers.get(api_key)
        if cached is not None and cached[0] == signature:
            return cached[1]
        table = self.tables[api_key]
        renderer = Renderer(self.businesses[api_key], table, s, today)
        self._renderers[api_key] = (signature, renderer)
        if table.cache_key != signature:
            table.cache = [None] * len(table)
            table.cache_key = signature
        return renderer

    def _apply_due(self) -> None:
        """Move refunds whose delay has passed from refund_initiated to refunded."""
        now = self.clock.time()
        while self._due and self._due[0][0] <= now:
            when, api_key, row = heapq.heappop(self._due)
            if self._due_at.get((api_key, row)) != when:
                continue  # a later refund moved the date
            del self._due_at[(api_key, row)]
            table = self.tables.get(api_key)
            if table is not None and row < len(table) and table.status[row] == REFUND_INITIATED:
                table.status[row] = REFUNDED
                table.touch(row)
                self._announce(api_key, row, "refunded")

    # --- webhooks (MAMO_API.md §8) ----------------------------------------------------------------

    def _announce(self, api_key: str, row: int, event: str | None) -> None:
        """Queue ``charge.<event>`` (and its ``payment.*`` mirror) for each webhook of the business that
        enabled it; the body is the charge as it is now. Called under the lock; sends nothing itself."""
        hooks = self.webhooks.get(api_key)
        if not event or not hooks:
            return
        table = self.tables[api_key]
        charge_id = table.id_of(row)
        renderer = self._renderer(api_key)
        deliveries = []
        for hook in hooks.values():
            for family in ("charge", "payment"):
                name = f"{family}.{event}"
                if name in hook.enabled_events:
                    body = renderer.render(row, "webhook", name).encode()
                    deliveries.append(Delivery(hook.id, hook.url, hook.auth_header, name, charge_id, body))
        self.stats["webhook_events"] += len(deliveries)
        self.deliverer.submit(deliveries)

    def webhook_list(self, tag: str) -> list[dict]:
        """The business's webhooks as ``GET /webhooks`` shows them."""
        with self.lock:
            return [w.as_json() for w in self.webhooks.get(self.business(tag).api_key, {}).values()]

    def _webhook_call(self, business: Business, method: str, parts: list[str], body: bytes):
        """``/webhooks`` under the lock: a ``Reply``, or (reply None) a registration to ping first."""
        hooks = self.webhooks.setdefault(business.api_key, {})
        if method == "GET" and len(parts) == 1:
            return Reply(200, json_bytes([w.as_json() for w in hooks.values()])), None
        current = None
        if len(parts) == 2:
            current = hooks.get(parts[1])
            if current is None:
                return Reply(404, WEBHOOK_NOT_FOUND), None
            if method == "DELETE":
                del hooks[parts[1]]
                return Reply(200, json_bytes({"success": True})), None
        try:
            data = json.loads(body or b"{}")
        except (ValueError, UnicodeDecodeError):
            return _validation_error("Body must be a JSON object"), None
        fields, errors = validate(data, current)
        if errors:
            return _validation_error(*errors), None
        return None, (business.api_key, current.id if current else None, fields)

    def _register(self, api_key: str, webhook_id: str | None, fields: dict) -> Reply:
        """Ping the URL (outside the lock), then store the webhook: 201 new, 200 updated."""
        auth = fields["auth_header"] if self.settings.webhook_ping_authorization else None
        if not ping(fields["url"], auth, self.settings.webhook_timeout_seconds):
            with self.lock:
                self.stats["webhook_unreachable"] += 1
            return Reply(422, UNREACHABLE)
        with self.lock:
            hooks = self.webhooks.setdefault(api_key, {})
            if webhook_id is not None and webhook_id not in hooks:
                return Reply(404, WEBHOOK_NOT_FOUND)  # deleted while it was pinged
            hook = Webhook(webhook_id or new_webhook_id(), fields["url"], fields["enabled_events"],
                           fields["auth_header"])  # fmt: skip
            hooks[hook.id] = hook
            return Reply(200 if webhook_id else 201, json_bytes(hook.as_json()))

    # --- the API --------------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes) -> Reply:
        """Answer one request to ``/manage_api/v1`` + ``path`` as Mamo would.

        A webhook registration pings its URL before it is stored, with the lock released meanwhile.
        """
        with self.lock:
            reply, registration = self._handle(method, path, query, headers, body)
        return reply if registration is None else self._register(*registration)

    def _handle(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes):
        with self.lock:
            route = self._route(method, path)
            self.stats["requests"] += 1
            self.stats[f"{method} {route}"] += 1
            business = self._authenticate(headers.get("authorization", ""))
            if business is None:
                self.stats["unauthorized"] += 1
                return Reply(403, UNAUTHORIZED), None
            wait = self._limiter.hit(business.api_key)
            if wait:
                self.stats["rate_limited"] += 1
                return Reply(429, TOO_MANY, {"Retry-After": str(max(1, math.ceil(wait)))}), None
            fault = self._fault()
            if fault is not None:
                return fault, None
            self._apply_due()
            parts = path.strip("/").split("/")
            if route == "/me":
                return Reply(200, json_bytes({"business_name": business.business_name,
                                          "business_tag": business.business_tag, "website": business.website})), None  # fmt: skip
            if route == "/charges":
                return self._list(business, query), None
            if route == "/charges/{id}":
                return self._single(business, parts[1]), None
            if route == "/charges/{id}/refunds":
                try:
                    amount = json.loads(body or b"{}", parse_float=Decimal).get("amount")
                except (ValueError, AttributeError):
                    return _validation_error("Body must be a JSON object"), None
                return self._refund(business, parts[1], amount), None
            if route.startswith("/webhooks"):
                return self._webhook_call(business, method, parts, body)
            return Reply(404, PATH_NOT_FOUND), None

    def _route(self, method: str, path: str) -> str:
        parts = path.strip("/").split("/")
        resources = RESOURCES if self.settings.serve_payments else ("charges",)
        if method == "GET" and parts == ["me"]:
            return "/me"
        if parts[0] in resources:
            if method == "GET" and len(parts) == 1:
                return "/charges"
            if method == "GET" and len(parts) == 2:
                return "/charges/{id}"
            if method == "POST" and len(parts) == 3 and parts[2] == "refunds":
                return "/charges/{id}/refunds"
        if parts[0] == "webhooks":
            if len(parts) == 1 and method in ("GET", "POST"):
                return "/webhooks"
            if len(parts) == 2 and method in ("PATCH", "DELETE"):
                return "/webhooks/{id}"
        return "(unknown)"

    def _authenticate(self, header: str) -> Business | None:
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        return self.businesses.get(key.strip())

    def _fault(self) -> Reply | None:
        every = self.settings.fault_every
        if not every or self.stats["requests"] % every:
            return None
        statuses = self.settings.fault_statuses
        status = statuses[self.stats["faults"] % len(statuses)]
        self.stats["faults"] += 1
        body, media = FAULT_BODIES.get(status, FAULT_BODIES[500])
        return Reply(status, body, {"Content-Type": media})

    def _list(self, business: Business, query: dict[str, str]) -> Reply:
        s = self.settings
        page_text, per_page_text = query.get("page"), query.get("per_page")
        try:
            page = int(page_text) if page_text is not None else 1
        except ValueError:
            page = 0
        if page < 1:
            if s.bad_page == "reject" and page_text is not None:
                return _validation_error("page must be a positive integer")
            page = 1
        try:
            per_page = int(per_page_text) if per_page_text is not None else s.default_per_page
        except ValueError:
            per_page = s.default_per_page
        if per_page < 1:
            per_page = s.default_per_page
        if per_page > s.max_per_page:
            if s.per_page_over_max == "reject":
                return _validation_error(f"per_page must be less than or equal to {s.max_per_page}")
            per_page = s.max_per_page
        table = self.tables[business.api_key]
        total = len(table)
        total_pages = math.ceil(total / per_page)
        start = (page - 1) * per_page
        if page > 1 and start >= total and s.page_past_end == "not_found":
            return Reply(404, PAGE_NOT_FOUND)
        renderer = self._renderer(business.api_key)
        cache = table.cache
        items = []
        for row in table.page_rows(s.order, start, start + per_page):
            text = cache[row]
            if text is None:
                text = cache[row] = renderer.render(row).encode()
            items.append(text)
        meta = {
            "page": page,
            "per_page": per_page,
            "total_pages": total_pages,
            "next_page": page + 1 if page < total_pages else None,
            "prev_page": page - 1 if page > 1 else None,
            "from": start + 1 if items else None,
            "to": start + len(items) if items else None,
            "total_count": total,
        }
        body = b'{"data":[' + b",".join(items) + b'],"pagination_meta":' + json_bytes(meta) + b"}"
        if items:
            self._after_page(business)
        return Reply(200, body)

    def _after_page(self, business: Business) -> None:
        """Insert charges mid-scan when ``insert_every_pages`` says so: they push items across pages."""
        every = self.settings.insert_every_pages
        if not every:
            return
        self._pages_served[business.api_key] += 1
        if self._pages_served[business.api_key] % every:
            return
        self.add_charges(business.business_tag, [{} for _ in range(self.settings.insert_count)])
        self.stats["inserted"] += self.settings.insert_count

    def _single(self, business: Business, charge_id: str) -> Reply:
        table = self.tables[business.api_key]
        row = table.row_of(charge_id)
        if row is None:
            return Reply(404, CHARGE_NOT_FOUND)
        return Reply(200, self._renderer(business.api_key).render(row, "single").encode())

    def _refund(self, business: Business, charge_id: str, amount: object) -> Reply:
        s = self.settings
        table = self.tables[business.api_key]
        row = table.row_of(charge_id)
        if row is None:
            return Reply(404, CHARGE_NOT_FOUND)
        minor = parse_minor(amount) if not isinstance(amount, str) else None
        if minor is None or minor < 100:
            return _validation_error("Amount must be a number greater than or equal to 1")
        self._apply_due()
        status, refunded, total = table.status[row], table.refund[row], table.amount[row]
        too_old = self.clock.time() - table.created[row] > s.refund_window_days * 86400
        if status not in PAID_CODES or refunded + minor > total or too_old:
            return Reply(422, CANNOT_REFUND)
        table.refund[row] = refunded + minor
        log = table.refund_log.setdefault(row, [(f"MPB-RFND-{table.id_of(row)[-10:]}", refunded)] if refunded else [])
        log.append((f"MPB-RFND-{uuid.uuid4().hex[:10].upper()}", minor))
        full = refunded + minor == total
        if full or s.partial_refund_status == "refunded":
            table.status[row] = REFUND_INITIATED
            when = self.clock.time() + s.refund_settle_seconds
            self._due_at[(business.api_key, row)] = when
            heapq.heappush(self._due, (when, business.api_key, row))
        table.touch(row)
        self._announce(business.api_key, row, refund_event(table.status[row]))
        self._apply_due()  # refunded at once when refund_settle_seconds is 0 (a charge.refunded of its own)
        renderer = self._renderer(business.api_key)
        return Reply(
            200,
            b'{"refund_amount":' + renderer.number(table.refund[row]).encode()
            + b',"refund_status":' + renderer.refund_status(row).encode() + b"}",
        )  # fmt: skip


def status_event(status: int) -> str | None:
    """The event a charge announces when it takes ``status`` (without ``charge.``); None: no event."""
    return {"captured": "succeeded", "failed": "failed", "refund_initiated": "refund_initiated",
            "refunded": "refunded", "voided": "voided"}.get(STATUSES[status])  # fmt: skip


def refund_event(status: int) -> str:
    """The event of a refund, by the status the charge has after it (a partial refund may leave it captured)."""
    return "refund_initiated" if status == REFUND_INITIATED else "refunded"
