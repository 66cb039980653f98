"""The Xero sandbox: identity, connections and the accounting API on one local server.

Real Xero spreads these over hosts; here they are paths of one app:

| real | sandbox |
|---|---|
| ``https://login.xero.com/identity/connect/authorize`` | ``GET/POST /identity/connect/authorize`` |
| ``https://identity.xero.com/connect/token`` (and ``/revocation``) | ``POST /identity/connect/token`` (``/revocation``) |
| ``https://api.xero.com/connections`` | ``GET /connections``, ``DELETE /connections/{id}`` |
| ``https://api.xero.com/api.xro/2.0`` | ``/api.xro/2.0/Accounts``, ``/Organisation``, ``/ManualJournals`` |

Behaviour follows LEDGER_APIS.md §1 and, where Xero is silent, the §6 defaults, each a setting
(``PATCH /_sandbox/settings``). Request bodies are checked against the Accounting API spec
(``settings.spec_path``). ``/_sandbox/…`` is the admin API tests and the demo use; Xero has no such thing.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import dataclasses
import functools
import hashlib
import html
import json
import logging
import math
import os
import re
import threading
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from numbers import Number
from typing import Any
from urllib.parse import unquote_plus

import yaml
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jsonschema import FormatChecker
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from referencing import Registry
from referencing.jsonschema import DRAFT4

from mamo_sandboxes.common import Clock, SlidingWindowLimiter
from mamo_sandboxes.xero_data import (
    DEFAULT_APP_NAME,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REDIRECT_URIS,
    DEFAULT_SCOPES,
    DEMO_TENANT_ID,
    default_organisations,
)
from mamo_sandboxes.xero_identity import AuthorizeError, BearerError, Identity, OAuthError
from mamo_sandboxes.xero_ledger import (
    Organisation,
    Outcome,
    QueryError,
    apply_order,
    check_journal,
    compile_where,
    modified_since,
    new_organisation,
    render_journal,
    update_organisation,
    upsert_account,
)

API = "/api.xro/2.0"
DEFAULT_SPEC_PATH = os.environ.get("MAMO_XERO_SPEC", "/work/shared/specs/xero/xero_accounting.yaml")
SCOPES_NEEDED = {
    "settings.read": {"accounting.settings", "accounting.settings.read"},
    "journals.read": {
        "accounting.manualjournals",
        "accounting.manualjournals.read",
        "accounting.transactions",
        "accounting.transactions.read",
    },
    "journals.write": {"accounting.manualjournals", "accounting.transactions"},
}
FAULT_KINDS = ("lost_response", "error", "rate_limit", "delay")
log = logging.getLogger(__name__)


@dataclass
class XeroSettings:
    """Every behaviour the vendor leaves open (LEDGER_APIS.md §6), as a setting with its default."""

    access_token_seconds: int = 1800
    refresh_grace_seconds: int = 1800  # the old refresh token works again this long after its first use
    refresh_idle_seconds: int = 60 * 86400  # an unused refresh token dies after 60 days
    refresh_reuse: str = (
        "grace"  # concurrent refreshes in the grace window: "grace" (both succeed) | "single_use"
    )
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


# --- JSON with exact decimals -----------------------------------------------------------------------

_DECIMAL_MARK = "\u0000decimal:"
_DECIMAL_OUT = re.compile(r'"\\u0000decimal:([^"]*)"')


def dumps(obj: Any) -> bytes:
    """JSON where ``Decimal`` amounts are written as exact numbers (``184.91``), never via float."""

    def prep(o):
        if isinstance(o, Decimal):
            return _DECIMAL_MARK + str(o)
        if isinstance(o, dict):
            return {k: prep(v) for k, v in o.items()}
        if isinstance(o, list | tuple):
            return [prep(v) for v in o]
        return o

    return _DECIMAL_OUT.sub(r"\1", json.dumps(prep(obj))).encode()


class Reply(Exception):
    """Answer now with ``status`` and a JSON ``body`` (raised from deep inside a handler)."""

    def __init__(self, status: int, body: Any, headers: dict | None = None):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}

    def response(self) -> Response:
        content = self.body if isinstance(self.body, bytes) else dumps(self.body)
        return Response(content, self.status, self.headers, media_type="application/json; charset=utf-8")


def _error(number: int, type_: str, message: str, elements: list | None = None) -> dict:
    body = {"ErrorNumber": number, "Type": type_, "Message": message}
    if elements is not None:
        body["Elements"] = elements
    return body


def _problem(status: int, title: str, detail: str) -> dict:
    return {
        "Type": None,
        "Title": title,
        "Status": status,
        "Detail": detail,
        "Instance": str(uuid.uuid4()),
        "Extensions": {},
    }


# --- state ------------------------------------------------------------------------------------------


class XeroSandbox:
    """All the sandbox's state. One instance per server; ``reset()`` restores a fresh one in place."""

    def __init__(self, clock: Clock | None = None):
        self.clock = clock or Clock()
        self._lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.clock.reset()
            self.settings = XeroSettings()
            self.organisations: dict[str, Organisation] = {}
            self.tenant_names: dict[str, str] = {}
            self.identity = Identity(self.settings, self.clock, self.tenant_names)
            self.identity.register_app(
                DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, list(DEFAULT_REDIRECT_URIS), DEFAULT_APP_NAME
            )
            for spec in default_organisations():
                self.add_organisation(spec)
            self.idempotency: dict[tuple[str, str], tuple[str, int, bytes]] = {}
            self.minute = SlidingWindowLimiter(self.clock, self.settings.limit_per_minute, 60)
            self.day = SlidingWindowLimiter(self.clock, self.settings.limit_per_day, 86400)
            self.app_minute = SlidingWindowLimiter(self.clock, self.settings.limit_app_per_minute, 60)
            self.inflight: dict[str, int] = defaultdict(int)
            self.requests: list[dict] = []

    def update_settings(self, changes: dict) -> None:
        with self._lock:
            self.settings.update(changes)
            self.minute.limit = self.settings.limit_per_minute
            self.day.limit = self.settings.limit_per_day
            self.app_minute.limit = self.settings.limit_app_per_minute

    def add_organisation(self, spec: dict) -> Organisation:
        with self._lock:
            org = new_organisation(spec, self.clock.now())
            if org.tenant_id in self.organisations:
                raise ValueError(f"tenant {org.tenant_id} exists")
            self.organisations[org.tenant_id] = org
            self.tenant_names[org.tenant_id] = org.name
            return org

    def take_fault(self, method: str, path: str) -> dict | None:
        """The first armed fault matching this request, with one of its ``times`` used up."""
        with self._lock:
            for fault in self.settings.faults:
                short = path[len(API) :] if path.startswith(API) else path
                if fault["method"] not in (None, method) or not (
                    path.startswith(fault["path"]) or short.startswith(fault["path"])
                ):
                    continue
                if fault["times"] is not None:
                    if fault["times"] <= 0:
                        continue
                    fault["times"] -= 1
                return dict(fault)
        return None

    def record(self, entry: dict) -> None:
        with self._lock:
            self.requests.append(entry)
            del self.requests[:-5000]

    # --- the accounting API's gate: auth, tenant, scopes, limits ------------------------------------

    def guard(self, request: Request, need: str) -> Organisation:
        ctx = request.scope.setdefault("xero_sandbox", {})
        if self.settings.require_json_accept and "json" not in request.headers.get("accept", ""):
            raise Reply(
                406,
                _problem(
                    406, "Not Acceptable", "The sandbox answers JSON only: send Accept: application/json"
                ),
            )
        try:
            access = self.identity.authenticate(request.headers.get("authorization"))
        except BearerError as exc:
            raise Reply(
                exc.status, exc.body(), {"WWW-Authenticate": 'Bearer error="invalid_token"'}
            ) from None
        tenant = request.headers.get("xero-tenant-id", "")
        ctx["tenant"] = tenant
        if tenant not in self.organisations or not self.identity.can_access(access, tenant):
            raise Reply(403, _problem(403, "Forbidden", "AuthenticationUnsuccessful"))
        if not SCOPES_NEEDED[need].intersection(access.scopes):
            raise Reply(401, _problem(401, "Unauthorized", "AuthorizationUnsuccessful"))
        self._count(ctx, tenant, access.client_id)
        return self.organisations[tenant]

    def _count(self, ctx: dict, tenant: str, client_id: str) -> None:
        s = self.settings
        with self._lock:
            problem, wait = None, 0.0
            if s.limit_concurrent and self.inflight[tenant] > s.limit_concurrent:
                problem, wait = "Concurrent", 1.0
            else:
                for name, limiter, key in (
                    ("AppMinute", self.app_minute, client_id),
                    ("Minute", self.minute, tenant),
                    ("Daily", self.day, tenant),
                ):
                    wait = limiter.hit(key)
                    if wait:
                        problem = name
                        break
            headers = {}
            for header, limiter, key in (
                ("X-DayLimit-Remaining", self.day, tenant),
                ("X-MinLimit-Remaining", self.minute, tenant),
                ("X-AppMinLimit-Remaining", self.app_minute, client_id),
            ):
                remaining = limiter.remaining(key)
                if remaining is not None:
                    headers[header] = str(remaining)
            ctx["rate_headers"] = headers
        if problem:
            raise Reply(
                429,
                _problem(429, "Too Many Requests", f"Rate limit exceeded: {problem}"),
                {"Retry-After": str(max(1, math.ceil(wait))), "X-Rate-Limit-Problem": problem},
            )

    # --- accounting endpoints -----------------------------------------------------------------------

    def envelope(self, key: str, items: list, **extra) -> dict:
        now = self.clock.now()
        return {
            "Id": str(uuid.uuid4()),
            "Status": "OK",
            "ProviderName": DEFAULT_APP_NAME,
            "DateTimeUTC": f"/Date({int(now.timestamp() * 1000)})/",
            **extra,
            key: items,
        }

    def list_accounts(self, org: Organisation, query: dict, since: str | None) -> dict:
        items = [a for a in org.accounts.values() if a["Status"] != "DELETED"]
        items = sorted(items, key=lambda a: a.get("Code") or "")
        return self.envelope("Accounts", self._query(items, query, since))

    def _query(self, items: list[dict], query: dict, since: str | None) -> list[dict]:
        try:
            items = [i for i in items if compile_where(query.get("where"))(i)]
            return apply_order(modified_since(items, since), query.get("order"))
        except QueryError as exc:
            raise Reply(400, _error(16, "QueryParseException", str(exc))) from None

    def list_journals(self, org: Organisation, query: dict, since: str | None) -> dict:
        page = query.get("page")
        items = [render_journal(j, with_lines=page is not None) for j in org.journals.values()]
        items = self._query(items, query, since)
        if page is None:
            return self.envelope("ManualJournals", items)
        try:
            page_no, size = int(page), int(query.get("pageSize") or 100)
        except ValueError:
            raise Reply(
                400, _error(16, "QueryParseException", "page and pageSize must be integers")
            ) from None
        page_no, size = max(page_no, 1), min(max(size, 1), 1000)
        chunk = items[(page_no - 1) * size : page_no * size]
        pagination = {
            "page": page_no,
            "pageSize": size,
            "pageCount": max(math.ceil(len(items) / size), 1),
            "itemCount": len(items),
        }
        return self.envelope("ManualJournals", chunk, pagination=pagination)

    def write_journals(
        self, org: Organisation, request: Request, body: bytes, journal_id: str | None
    ) -> Response:
        """PUT/POST ``/ManualJournals`` and POST ``/ManualJournals/{id}``, with Idempotency-Key memory."""
        key = request.headers.get("idempotency-key")
        ctx = request.scope.setdefault("xero_sandbox", {})
        ctx["idempotency_key"] = key
        summarize = request.query_params.get("summarizeErrors", "false").lower() == "true"
        if key is not None and len(key) > 128:
            raise Reply(
                400, _error(10, "ValidationException", "Idempotency-Key must be at most 128 characters")
            )
        fingerprint = hashlib.sha256(
            b"|".join([request.method.encode(), request.url.path.encode(), str(summarize).encode(), body])
        ).hexdigest()
        with self._lock:
            if key is not None and (seen := self.idempotency.get((org.tenant_id, key))):
                first_fingerprint, status, content = seen
                if first_fingerprint != fingerprint and self.settings.idempotency == "reject_different_body":
                    raise Reply(
                        400,
                        _error(
                            10,
                            "ValidationException",
                            f"Idempotency-Key '{key}' was already used with a different request",
                        ),
                    )
                ctx["replayed"] = True
                return Reply(status, content, {"Idempotent-Replayed": "true"}).response()
            try:
                status, payload = self._write(org, request.method, body, summarize, journal_id)
            except Reply as reply:  # validation answers are remembered too
                status, payload = reply.status, reply.body
            content = dumps(payload)
            if key is not None and status < 500:
                self.idempotency[(org.tenant_id, key)] = (fingerprint, status, content)
            return Reply(status, content).response()

    def _write(
        self, org: Organisation, method: str, body: bytes, summarize: bool, journal_id: str | None
    ) -> tuple[int, dict]:
        journals = self._parse_journals(body)
        now = self.clock.now()
        outcomes: list[Outcome] = []
        for raw in journals:
            target = journal_id or (raw.get("ManualJournalID") if method == "POST" else None)
            existing = None
            if target is not None:
                existing = org.journals.get(str(target))
                if existing is None:
                    raise Reply(404, _problem(404, "NotFound", f"ManualJournal {target} was not found"))
            outcomes.append(check_journal(org, raw, self.settings, now, existing))
        failed = [o for o in outcomes if not o.ok]
        if any(o.fatal for o in outcomes) or (summarize and failed):
            return 400, _error(
                10, "ValidationException", "A validation exception occurred", [o.element() for o in outcomes]
            )
        for outcome in outcomes:
            if outcome.ok:
                journal = outcome.journal
                journal.setdefault("ManualJournalID", str(uuid.uuid4()))
                org.journals[journal["ManualJournalID"]] = journal
        return 200, self.envelope("ManualJournals", [o.element() for o in outcomes])

    def _parse_journals(self, body: bytes) -> list[dict]:
        try:
            data = json.loads(body or b"null", parse_float=Decimal)
        except ValueError as exc:
            raise Reply(
                400, _error(14, "PostDataInvalidException", f"The request body is not valid JSON: {exc}")
            ) from None
        if self.settings.validate_requests:
            problems = []
            for error in spec_validator("ManualJournals", self.settings.spec_path).iter_errors(data):
                if error.validator == "required" and "'Narration'" in error.message:
                    continue  # reported per journal, as Xero's "Narration is required" validation error
                where = "/".join(str(p) for p in error.absolute_path) or "(body)"
                problems.append(f"{where}: {error.message}")
            if problems:
                raise Reply(
                    400,
                    _error(
                        14,
                        "PostDataInvalidException",
                        "The request does not match the ManualJournals schema: " + "; ".join(problems),
                    ),
                )
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("ManualJournals"), list)
            or not data["ManualJournals"]
        ):
            raise Reply(
                400, _error(14, "PostDataInvalidException", "ManualJournals must hold at least one journal")
            )
        return data["ManualJournals"]


# --- HTTP ---------------------------------------------------------------------------------------------

_silence_broken_response = contextvars.ContextVar("xero_sandbox_dropping", default=False)


class _DropFilter(logging.Filter):
    """Keep uvicorn quiet about a response the sandbox breaks on purpose (a ``lost_response`` fault)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _silence_broken_response.get()


logging.getLogger("uvicorn.error").addFilter(_DropFilter())


class SandboxMiddleware:
    """Faults, the per-tenant in-flight count, rate-limit headers and the request log (pure ASGI)."""

    def __init__(self, app, sandbox: XeroSandbox):
        self.app, self.sandbox = app, sandbox

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].startswith("/_sandbox"):
            return await self.app(scope, receive, send)
        sandbox, path, method = self.sandbox, scope["path"], scope["method"]
        ctx = scope.setdefault("xero_sandbox", {})
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        tenant = headers.get("xero-tenant-id") if path.startswith(API) else None
        fault = sandbox.take_fault(method, path)
        status: dict[str, int] = {}
        if tenant:
            with sandbox._lock:
                sandbox.inflight[tenant] += 1
        try:
            if fault and fault["kind"] == "delay":
                await asyncio.sleep(float(fault["delay_seconds"]))
            if fault and fault["kind"] in ("error", "rate_limit"):
                if fault["kind"] == "error":
                    reply = Reply(
                        int(fault["status"]),
                        _problem(int(fault["status"]), "Service Unavailable", "Injected fault"),
                    )
                else:
                    reply = Reply(
                        429,
                        _problem(429, "Too Many Requests", f"Rate limit exceeded: {fault['problem']}"),
                        {
                            "Retry-After": str(fault["retry_after"]),
                            "X-Rate-Limit-Problem": str(fault["problem"]),
                        },
                    )
                status["code"] = reply.status
                await reply.response()(scope, receive, send)
                return
            if fault and fault["kind"] == "lost_response":
                await self._lose(fault, scope, receive, send, status)
                return

            async def send_with_headers(message):
                if message["type"] == "http.response.start":
                    status["code"] = message["status"]
                    extra = [(k.encode(), v.encode()) for k, v in ctx.get("rate_headers", {}).items()]
                    message = {**message, "headers": list(message.get("headers", [])) + extra}
                await send(message)

            await self.app(scope, receive, send_with_headers)
        finally:
            if tenant:
                with sandbox._lock:
                    sandbox.inflight[tenant] -= 1
            sandbox.record(
                {
                    "at": sandbox.clock.now().isoformat(),
                    "method": method,
                    "path": path,
                    "query": scope.get("query_string", b"").decode(),
                    "status": status.get("code"),
                    "tenant": ctx.get("tenant") or tenant,
                    "grant_type": ctx.get("grant_type"),
                    "idempotency_key": ctx.get("idempotency_key"),
                    "replayed": ctx.get("replayed", False),
                    "fault": fault["kind"] if fault else None,
                }
            )

    async def _lose(self, fault: dict, scope, receive, send, status: dict) -> None:
        """Process the request for real, then lose the answer."""
        messages = []

        async def keep(message):
            messages.append(message)

        await self.app(scope, receive, keep)
        if fault["mode"] == "500":
            status["code"] = 500
            await Reply(500, _problem(500, "Internal Server Error", "Injected fault")).response()(
                scope, receive, send
            )
            return
        if fault["mode"] == "timeout":
            await asyncio.sleep(float(fault["delay_seconds"]) or 30.0)
            status["code"] = messages[0]["status"]
            for message in messages:
                await send(message)
            return
        start = messages[0]
        body = b"".join(m.get("body", b"") for m in messages[1:])
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        status["code"] = 0  # the client never gets a status
        _silence_broken_response.set(True)
        await send({**start, "headers": headers + [(b"content-length", str(len(body) + 64).encode())]})
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
        # returning with the body unfinished makes uvicorn close the connection mid-response


def _basic_auth(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip()).decode()
    except ValueError:
        return None
    client_id, _, secret = decoded.partition(":")
    return unquote_plus(client_id), unquote_plus(secret)


def _consent_page(txn: str, pending, organisations: dict[str, Organisation]) -> str:
    esc = html.escape
    orgs = "\n".join(
        f'<li><label><input type="checkbox" name="tenant" value="{esc(o.tenant_id)}" checked> '
        f"{esc(o.name)} ({esc(o.base_currency)})</label></li>"
        for o in organisations.values()
    )
    scopes = "\n".join(f"<li><code>{esc(s)}</code></li>" for s in pending.scopes)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Xero sandbox: connect {esc(pending.app.name)}</title></head>
<body>
<h1>{esc(pending.app.name)} wants to connect to Xero</h1>
<p>Signed in to the Xero sandbox as <strong>finance@acme.example</strong>.</p>
<p>The app asks to:</p><ul>{scopes}</ul>
<form method="post" action="/identity/connect/authorize">
<input type="hidden" name="txn" value="{esc(txn)}">
<fieldset><legend>Organisations to connect</legend><ul>
{orgs}
</ul></fieldset>
<button type="submit" name="decision" value="allow">Allow access</button>
<button type="submit" name="decision" value="cancel">Cancel</button>
</form>
</body></html>"""


def _error_page(message: str, status: int = 400) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html><body><h1>Xero sandbox</h1><p>{html.escape(message)}</p></body></html>", status
    )


def create_app(state: XeroSandbox | None = None) -> FastAPI:
    """The sandbox as an ASGI app; ``app.state.sandbox`` is its state."""
    sandbox = state or XeroSandbox()
    app = FastAPI(title="Xero sandbox", docs_url="/_sandbox/docs", openapi_url="/_sandbox/openapi.json")
    app.state.sandbox = sandbox
    app.add_exception_handler(Reply, lambda request, exc: exc.response())
    app.add_middleware(SandboxMiddleware, sandbox=sandbox)

    def json_response(payload: Any, status: int = 200) -> Response:
        return Response(dumps(payload), status, media_type="application/json; charset=utf-8")

    async def json_body(request: Request) -> dict:
        try:
            data = json.loads(await request.body() or b"{}")
        except ValueError:
            raise Reply(400, {"error": "the body must be JSON"}) from None
        if not isinstance(data, dict):
            raise Reply(400, {"error": "the body must be a JSON object"})
        return data

    # --- identity ------------------------------------------------------------------------------------

    @app.get("/identity/.well-known/openid-configuration")
    async def discovery(request: Request):
        base = str(request.base_url).rstrip("/")
        return json_response(
            {
                "issuer": sandbox.identity.issuer,
                "authorization_endpoint": f"{base}/identity/connect/authorize",
                "token_endpoint": f"{base}/identity/connect/token",
                "revocation_endpoint": f"{base}/identity/connect/revocation",
                "response_types_supported": ["code"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                    "none",
                ],
            }
        )

    @app.get("/identity/connect/authorize")
    async def authorize(request: Request):
        try:
            txn, pending = sandbox.identity.start_authorization(dict(request.query_params))
        except AuthorizeError as exc:
            if exc.redirect:
                return RedirectResponse(exc.redirect, 302)
            return _error_page(str(exc))
        return HTMLResponse(_consent_page(txn, pending, sandbox.organisations))

    @app.post("/identity/connect/authorize")
    async def consent(request: Request):
        form = await request.form()
        try:
            location = sandbox.identity.decide(
                str(form.get("txn", "")),
                form.get("decision") == "allow",
                [str(t) for t in form.getlist("tenant")],
            )
        except AuthorizeError as exc:
            return _error_page(str(exc))
        return RedirectResponse(location, 302)

    async def oauth_form(request: Request) -> dict:
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            raise OAuthError("invalid_request", description="the body must be form-encoded")
        return {k: str(v) for k, v in (await request.form()).items()}

    @app.post("/identity/connect/token")
    async def token(request: Request):
        ctx = request.scope.setdefault("xero_sandbox", {})
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        try:
            form = await oauth_form(request)
            ctx["grant_type"] = form.get("grant_type")
            body = sandbox.identity.token(form, _basic_auth(request.headers.get("authorization")))
        except OAuthError as exc:
            return Response(dumps(exc.body()), exc.status, headers, media_type="application/json")
        return Response(dumps(body), 200, headers, media_type="application/json")

    @app.post("/identity/connect/revocation")
    async def revocation(request: Request):
        try:
            sandbox.identity.revoke(
                await oauth_form(request), _basic_auth(request.headers.get("authorization"))
            )
        except OAuthError as exc:
            return Response(dumps(exc.body()), exc.status, media_type="application/json")
        return Response(status_code=200)

    def bearer(request: Request):
        try:
            return sandbox.identity.authenticate(request.headers.get("authorization"))
        except BearerError as exc:
            raise Reply(exc.status, exc.body()) from None

    @app.get("/connections")
    @app.get("/Connections")
    async def connections(request: Request, authEventId: str | None = None):  # noqa: N803 (Xero's name)
        return json_response(sandbox.identity.list_connections(bearer(request), authEventId))

    @app.delete("/connections/{connection_id}")
    @app.delete("/Connections/{connection_id}")
    async def disconnect(request: Request, connection_id: str):
        if not sandbox.identity.delete_connection(bearer(request), connection_id):
            raise Reply(404, _problem(404, "NotFound", "Resource not found"))
        return Response(status_code=204)

    # --- accounting ----------------------------------------------------------------------------------

    @app.get(f"{API}/Organisation")
    async def organisation(request: Request):
        org = sandbox.guard(request, "settings.read")
        return json_response(sandbox.envelope("Organisations", [org.render()]))

    @app.get(f"{API}/Accounts")
    async def accounts(request: Request):
        org = sandbox.guard(request, "settings.read")
        return json_response(
            sandbox.list_accounts(org, dict(request.query_params), request.headers.get("if-modified-since"))
        )

    @app.get(f"{API}/Accounts/{{account_id}}")
    async def account(request: Request, account_id: str):
        org = sandbox.guard(request, "settings.read")
        found = org.accounts.get(account_id)
        if found is None or found["Status"] == "DELETED":
            raise Reply(404, _problem(404, "NotFound", "The resource you're looking for cannot be found"))
        return json_response(sandbox.envelope("Accounts", [found]))

    @app.get(f"{API}/ManualJournals")
    async def manual_journals(request: Request):
        org = sandbox.guard(request, "journals.read")
        return json_response(
            sandbox.list_journals(org, dict(request.query_params), request.headers.get("if-modified-since"))
        )

    @app.get(f"{API}/ManualJournals/{{journal_id}}")
    async def manual_journal(request: Request, journal_id: str):
        org = sandbox.guard(request, "journals.read")
        found = org.journals.get(journal_id)
        if found is None:
            raise Reply(404, _problem(404, "NotFound", "The resource you're looking for cannot be found"))
        return json_response(sandbox.envelope("ManualJournals", [render_journal(found)]))

    @app.put(f"{API}/ManualJournals")
    @app.post(f"{API}/ManualJournals")
    async def write_journals(request: Request):
        org = sandbox.guard(request, "journals.write")
        return sandbox.write_journals(org, request, await request.body(), None)

    @app.post(f"{API}/ManualJournals/{{journal_id}}")
    async def update_journal(request: Request, journal_id: str):
        org = sandbox.guard(request, "journals.write")
        return sandbox.write_journals(org, request, await request.body(), journal_id)

    # --- admin ---------------------------------------------------------------------------------------

    def admin(fn):
        """Admin handlers answer 400 with the reason for a bad input."""

        @functools.wraps(fn)
        async def wrapper(*args, **kwargs):
            try:
                return await fn(*args, **kwargs)
            except (ValueError, KeyError, TypeError) as exc:
                raise Reply(400, {"error": str(exc)}) from None

        return wrapper

    @app.get("/")
    async def index():
        return json_response(
            {
                "sandbox": "xero",
                "api_base": API,
                "authorize": "/identity/connect/authorize",
                "token": "/identity/connect/token",
                "connections": "/connections",
                "admin": "/_sandbox/docs",
                "default_app": {"client_id": DEFAULT_CLIENT_ID, "redirect_uris": list(DEFAULT_REDIRECT_URIS)},
                "demo_tenant_id": DEMO_TENANT_ID,
            }
        )

    @app.get("/_sandbox/health")
    async def health():
        return json_response({"ok": True, "organisations": len(sandbox.organisations)})

    @app.post("/_sandbox/reset")
    async def reset():
        sandbox.reset()
        return json_response({"reset": True, "now": sandbox.clock.now().isoformat()})

    @app.get("/_sandbox/settings")
    async def get_settings():
        return json_response(sandbox.settings.public())

    @app.patch("/_sandbox/settings")
    @admin
    async def patch_settings(request: Request):
        sandbox.update_settings(await json_body(request))
        return json_response(sandbox.settings.public())

    @app.post("/_sandbox/faults")
    @admin
    async def add_fault(request: Request):
        fault = check_fault(await json_body(request))
        with sandbox._lock:
            sandbox.settings.faults.append(fault)
        return json_response({"faults": sandbox.settings.faults}, 201)

    @app.delete("/_sandbox/faults")
    async def clear_faults():
        with sandbox._lock:
            sandbox.settings.faults.clear()
        return Response(status_code=204)

    @app.get("/_sandbox/clock")
    async def get_clock():
        return json_response({"now": sandbox.clock.now().isoformat()})

    @app.post("/_sandbox/clock")
    @admin
    async def move_clock(request: Request):
        body = await json_body(request)
        if body.get("reset"):
            sandbox.clock.reset()
        seconds = body.get("advance_seconds", 0)
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise ValueError("advance_seconds must be a non-negative number")
        sandbox.clock.advance(seconds)
        return json_response({"now": sandbox.clock.now().isoformat()})

    @app.get("/_sandbox/apps")
    async def list_apps():
        return json_response({"apps": [a.public() for a in sandbox.identity.apps.values()]})

    @app.post("/_sandbox/apps")
    @admin
    async def register_app(request: Request):
        body = await json_body(request)
        app_ = sandbox.identity.register_app(
            body.get("client_id") or uuid.uuid4().hex.upper(),
            body.get("client_secret"),
            list(body.get("redirect_uris") or []),
            body.get("name") or "Sandbox app",
            bool(body.get("legacy_scopes")),
        )
        return json_response(app_.public() | {"client_secret": app_.client_secret}, 201)

    @app.get("/_sandbox/organisations")
    async def list_organisations():
        return json_response({"organisations": [o.render() for o in sandbox.organisations.values()]})

    @app.post("/_sandbox/organisations")
    @admin
    async def create_organisation(request: Request):
        org = sandbox.add_organisation(await json_body(request))
        return json_response(org.render() | {"tenant_id": org.tenant_id}, 201)

    def find_org(tenant_id: str) -> Organisation:
        if tenant_id not in sandbox.organisations:
            raise Reply(404, {"error": f"no organisation {tenant_id}"})
        return sandbox.organisations[tenant_id]

    @app.patch("/_sandbox/organisations/{tenant_id}")
    @admin
    async def patch_organisation(request: Request, tenant_id: str):
        org = find_org(tenant_id)
        with sandbox._lock:
            update_organisation(org, await json_body(request))
            sandbox.tenant_names[tenant_id] = org.name
        return json_response(org.render())

    @app.post("/_sandbox/organisations/{tenant_id}/accounts")
    @admin
    async def add_account(request: Request, tenant_id: str):
        org = find_org(tenant_id)
        body = await json_body(request)
        if not body.get("Code") or not body.get("Name") or not body.get("Type"):
            raise ValueError("an account needs Code, Name and Type")
        with sandbox._lock:
            return json_response(upsert_account(org, body, sandbox.clock.now()), 201)

    @app.patch("/_sandbox/organisations/{tenant_id}/accounts/{code_or_id}")
    @admin
    async def patch_account(request: Request, tenant_id: str, code_or_id: str):
        org = find_org(tenant_id)
        account = org.accounts.get(code_or_id) or org.account_by_code(code_or_id)
        if account is None:
            raise Reply(404, {"error": f"no account {code_or_id} in {tenant_id}"})
        with sandbox._lock:
            changes = await json_body(request) | {"AccountID": account["AccountID"]}
            return json_response(upsert_account(org, changes, sandbox.clock.now()))

    @app.get("/_sandbox/organisations/{tenant_id}/journals")
    async def posted_journals(tenant_id: str):
        org = find_org(tenant_id)
        return json_response(
            {"tenant_id": tenant_id, "journals": [render_journal(j) for j in org.journals.values()]}
        )

    @app.get("/_sandbox/journals/{journal_id}")
    async def one_journal(journal_id: str):
        for org in sandbox.organisations.values():
            if journal_id in org.journals:
                return json_response(
                    {
                        "tenant_id": org.tenant_id,
                        "organisation": org.name,
                        "journal": render_journal(org.journals[journal_id]),
                    }
                )
        raise Reply(404, {"error": f"no journal {journal_id}"})

    @app.post("/_sandbox/grants")
    @admin
    async def issue_grant(request: Request):
        body = await json_body(request)
        result = sandbox.identity.issue_grant(
            body.get("client_id") or DEFAULT_CLIENT_ID,
            list(body.get("tenant_ids") or [DEMO_TENANT_ID]),
            tuple((body.get("scopes") or DEFAULT_SCOPES).split()),
        )
        return json_response(result, 201)

    @app.get("/_sandbox/requests")
    async def request_log(path_contains: str | None = None):
        entries = [e for e in sandbox.requests if path_contains is None or path_contains in e["path"]]
        return json_response({"requests": entries})

    @app.delete("/_sandbox/requests")
    async def clear_log():
        with sandbox._lock:
            sandbox.requests.clear()
        return Response(status_code=204)

    return app
