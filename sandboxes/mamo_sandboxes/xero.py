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

Modules: this one holds the state and Xero's routes; ``xero_identity`` the OAuth server,
``xero_ledger`` organisations and journals, ``xero_settings`` the settings and spec validation,
``xero_http`` JSON, error bodies and the fault middleware, ``xero_admin`` the admin API,
``xero_data`` the default app, organisations and chart of accounts.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections import defaultdict
from decimal import Decimal

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mamo_sandboxes.common import LedgerSandbox, Reply, SlidingWindowLimiter, dumps, json_response
from mamo_sandboxes.xero_admin import add_admin_routes
from mamo_sandboxes.xero_data import (
    DEFAULT_APP_NAME,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REDIRECT_URIS,
    default_organisations,
)
from mamo_sandboxes.xero_http import (
    API,
    SandboxMiddleware,
    basic_auth,
    consent_page,
    error_page,
    problem_body,
)
from mamo_sandboxes.xero_http import error_body as _error
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
)
from mamo_sandboxes.xero_settings import DEFAULT_SPEC_PATH, XeroSettings, check_fault, spec_validator

__all__ = [
    "API",
    "DEFAULT_SPEC_PATH",
    "XeroSandbox",
    "XeroSettings",
    "check_fault",
    "create_app",
    "spec_validator",
]

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


class XeroSandbox(LedgerSandbox):
    """All the sandbox's state. One instance per server; ``reset()`` restores a fresh one in place."""

    def reset(self) -> None:
        with self.lock:
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
        with self.lock:
            self.settings.update(changes)
            self.minute.limit = self.settings.limit_per_minute
            self.day.limit = self.settings.limit_per_day
            self.app_minute.limit = self.settings.limit_app_per_minute

    def add_organisation(self, spec: dict) -> Organisation:
        with self.lock:
            org = new_organisation(spec, self.clock.now())
            if org.tenant_id in self.organisations:
                raise ValueError(f"tenant {org.tenant_id} exists")
            self.organisations[org.tenant_id] = org
            self.tenant_names[org.tenant_id] = org.name
            return org

    # --- the accounting API's gate: auth, tenant, scopes, limits ------------------------------------

    def guard(self, request: Request, need: str) -> Organisation:
        ctx = request.scope.setdefault("xero_sandbox", {})
        if self.settings.require_json_accept and "json" not in request.headers.get("accept", ""):
            raise Reply(
                406,
                problem_body(
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
            raise Reply(403, problem_body(403, "Forbidden", "AuthenticationUnsuccessful"))
        if not SCOPES_NEEDED[need].intersection(access.scopes):
            raise Reply(401, problem_body(401, "Unauthorized", "AuthorizationUnsuccessful"))
        self._count(ctx, tenant, access.client_id)
        return self.organisations[tenant]

    def _count(self, ctx: dict, tenant: str, client_id: str) -> None:
        s = self.settings
        with self.lock:
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
                problem_body(429, "Too Many Requests", f"Rate limit exceeded: {problem}"),
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
        with self.lock:
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
                    raise Reply(404, problem_body(404, "NotFound", f"ManualJournal {target} was not found"))
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


def create_app(state: XeroSandbox | None = None) -> FastAPI:
    """The sandbox as an ASGI app; ``app.state.sandbox`` is its state."""
    sandbox = state or XeroSandbox()
    app = FastAPI(title="Xero sandbox", docs_url="/_sandbox/docs", openapi_url="/_sandbox/openapi.json")
    app.state.sandbox = sandbox
    app.add_exception_handler(Reply, lambda request, exc: exc.response())
    app.add_middleware(SandboxMiddleware, sandbox=sandbox)

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
            return error_page(str(exc))
        return HTMLResponse(consent_page(txn, pending, sandbox.organisations))

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
            return error_page(str(exc))
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
            body = sandbox.identity.token(form, basic_auth(request.headers.get("authorization")))
        except OAuthError as exc:
            return Response(dumps(exc.body()), exc.status, headers, media_type="application/json")
        return Response(dumps(body), 200, headers, media_type="application/json")

    @app.post("/identity/connect/revocation")
    async def revocation(request: Request):
        try:
            sandbox.identity.revoke(
                await oauth_form(request), basic_auth(request.headers.get("authorization"))
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
            raise Reply(404, problem_body(404, "NotFound", "Resource not found"))
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
            raise Reply(404, problem_body(404, "NotFound", "The resource you're looking for cannot be found"))
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
            raise Reply(404, problem_body(404, "NotFound", "The resource you're looking for cannot be found"))
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

    add_admin_routes(app, sandbox)
    return app
