"""The Zoho Books sandbox: every data centre's accounts server and Books API on one local server.

Real Zoho spreads a data centre over two hosts; here each data centre is a path prefix
(``location`` as in Zoho's redirect: us, eu, in, au, jp, ca, cn, sa):

| real | sandbox |
|---|---|
| ``https://accounts.zoho.com`` (``.eu``, ``.in`` …) | ``{base}/us/accounts`` (``/eu/accounts``, ``/in/accounts`` …) |
| ``…/oauth/v2/auth``, ``/oauth/v2/token``, ``/oauth/v2/token/revoke``, ``/oauth/serverinfo`` | the same paths under the prefix |
| ``https://www.zohoapis.com`` (``.eu`` …), the token's ``api_domain`` | ``{base}/us/api`` (``/eu/api`` …) |
| ``{api_domain}/books/v3/…`` | ``{base}/{location}/api/books/v3/…`` |

Consent may start at any data centre (the project starts at ``us``, as Zoho's ``accounts.zoho.com``);
the redirect back names the user's own data centre in ``location`` and ``accounts-server``, the code
and tokens are valid only there, and the token answer's ``api_domain`` points back at it. A token
used at another data centre's API answers 401 ``{"code": 57}``.

Behaviour follows LEDGER_APIS.md §2 and, where Zoho is silent, the §6 defaults, each a setting
(``PATCH /_sandbox/settings``). ``POST``/``PUT`` journal bodies are checked against the hand-written
schema of ``zoho_schema``. ``/_sandbox/…`` is the admin API (``zoho_admin``); Zoho has no such thing.

Modules: this one holds the state and Zoho's routes; ``zoho_identity`` the accounts server,
``zoho_ledger`` organisations, accounts, journals and locks, ``zoho_settings`` the settings and faults,
``zoho_http`` the consent page and the fault middleware, ``zoho_data`` the defaults.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mamo_sandboxes.common import LedgerSandbox, Reply, SlidingWindowLimiter, json_response
from mamo_sandboxes.zoho_data import (
    DEFAULT_APP_NAME,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REDIRECT_URIS,
    USERS,
    default_organisations,
)
from mamo_sandboxes.zoho_http import SandboxMiddleware, books_error, consent_page, error_page
from mamo_sandboxes.zoho_identity import (
    NOT_AUTHORISED,
    AccessRecord,
    AuthorizeError,
    Identity,
    NotAuthorised,
    OAuthError,
    accounts_server,
    has_scope,
)
from mamo_sandboxes.zoho_ledger import (
    BAD_REQUEST_BODY,
    DUPLICATE_REFERENCE,
    INVALID_VALUE,
    NOT_FOUND,
    BooksError,
    Organisation,
    check_journal,
    filter_accounts,
    list_journals,
    new_organisation,
    publish,
    remove_journal,
    render_account,
    render_journal,
    save_new_journal,
)
from mamo_sandboxes.zoho_schema import journal_problems
from mamo_sandboxes.zoho_settings import ZohoSettings

__all__ = ["ZohoSandbox", "ZohoSettings", "create_app"]

BOOKS = "/books/v3"
MINUTE_MESSAGE = (
    "You have made too many requests per minute for this organization. Please try again after some time."
)
DAY_MESSAGE = (
    "You have reached the maximum number of API requests allowed per day for this organization. "
    "Please try again tomorrow."
)


class ZohoSandbox(LedgerSandbox):
    """All the sandbox's state. One instance per server; ``reset()`` restores a fresh one in place."""

    def reset(self) -> None:
        with self.lock:
            self.clock.reset()
            self.settings = ZohoSettings()
            self.identity = Identity(self.settings, self.clock)
            self.identity.register_app(
                DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, list(DEFAULT_REDIRECT_URIS), DEFAULT_APP_NAME
            )
            for user in USERS:
                self.identity.add_user(user["email"], user["location"], user["name"], user["zuid"])
            self.organisations: dict[str, Organisation] = {}
            for spec in default_organisations():
                self.add_organisation(spec)
            self.minute = SlidingWindowLimiter(self.clock, self.settings.limit_per_minute, 60)
            self.day = SlidingWindowLimiter(self.clock, self.settings.limit_per_day, 86400)
            self.requests: list[dict] = []

    def update_settings(self, changes: dict) -> None:
        with self.lock:
            self.settings.update(changes)
            self.minute.limit = self.settings.limit_per_minute
            self.day.limit = self.settings.limit_per_day

    def add_organisation(self, spec: dict) -> Organisation:
        with self.lock:
            org = new_organisation(spec, self.clock.now())
            if org.organization_id in self.organisations:
                raise ValueError(f"organisation {org.organization_id} exists")
            if org.location not in self.settings.locations:
                raise ValueError(f"location must be one of {self.settings.locations}")
            self.organisations[org.organization_id] = org
            return org

    @staticmethod
    def rate_limit_message(problem: str) -> str:
        return DAY_MESSAGE if problem == "day" else MINUTE_MESSAGE

    # --- the Books API's gate: data centre, token, scope, organisation, limits ----------------------

    def location(self, location: str) -> str:
        if location not in self.settings.locations:
            raise Reply(404, books_error(404, f"No data centre {location!r} in this sandbox"))
        return location

    def guard(self, request: Request, location: str, module: str, operation: str) -> AccessRecord:
        self.location(location)
        try:
            access = self.identity.authenticate(request.headers.get("authorization"), location)
        except NotAuthorised:
            raise Reply(401, NOT_AUTHORISED) from None
        if not has_scope(access.scopes, module, operation):
            raise Reply(401, NOT_AUTHORISED)
        return access

    def organisation(self, request: Request, access: AccessRecord, location: str) -> Organisation:
        """The ``organization_id`` of the query, reachable by the token's user in this data centre; counted."""
        org_id = request.query_params.get("organization_id", "")
        org = self.organisations.get(org_id)
        if org is None or org.deleted or org.location != location or access.user not in org.users:
            raise Reply(400, books_error(INVALID_VALUE, "Invalid value passed for organization_id"))
        for problem, limiter in (("minute", self.minute), ("day", self.day)):
            wait = limiter.hit(org_id)
            if wait:
                headers = (
                    {"Retry-After": str(max(1, math.ceil(wait)))}
                    if self.settings.rate_limit_retry_after
                    else {}
                )
                raise Reply(429, books_error(45, self.rate_limit_message(problem)), headers)
        return org

    def journal(self, org: Organisation, journal_id: str) -> dict:
        found = org.journals.get(journal_id)
        if found is None:
            raise Reply(404, books_error(NOT_FOUND, "The journal entry does not exist."))
        return found

    def journal_body(self, raw: bytes) -> dict:
        try:
            body = json.loads(raw or b"null", parse_float=Decimal)
        except ValueError:
            raise Reply(400, books_error(BAD_REQUEST_BODY, "Invalid value passed for JSONString")) from None
        if self.settings.validate_requests:
            problems = journal_problems(body)
            if problems:
                raise Reply(
                    400, books_error(BAD_REQUEST_BODY, "Invalid request body: " + "; ".join(problems))
                )
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("line_items"), list)
            or not body.get("journal_date")
        ):
            raise Reply(400, books_error(BAD_REQUEST_BODY, "journal_date and line_items are required"))
        return body


def ok(payload: dict, status: int = 200, message: str = "success") -> Response:
    return json_response({"code": 0, "message": message} | payload, status)


def _page(request: Request, items: list, max_per_page: int) -> tuple[list, dict]:
    try:
        page = max(int(request.query_params.get("page", 1)), 1)
        per_page = min(max(int(request.query_params.get("per_page", 200)), 1), max_per_page)
    except ValueError:
        raise Reply(400, books_error(INVALID_VALUE, "Invalid value passed for page or per_page")) from None
    chunk = items[(page - 1) * per_page : page * per_page]
    context = {
        "page": page,
        "per_page": per_page,
        "has_more_page": page * per_page < len(items),
        "sort_order": "A",
    }
    return chunk, context


async def _oauth_params(request: Request) -> dict:
    """Zoho takes the token endpoint's parameters in the query string or a form body."""
    params = {k: str(v) for k, v in request.query_params.items()}
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        params |= {k: str(v) for k, v in (await request.form()).items()}
    return params


def create_app(state: ZohoSandbox | None = None) -> FastAPI:
    """The sandbox as an ASGI app; ``app.state.sandbox`` is its state."""
    from mamo_sandboxes.zoho_admin import add_admin_routes

    sandbox = state or ZohoSandbox()
    app = FastAPI(title="Zoho Books sandbox", docs_url="/_sandbox/docs", openapi_url="/_sandbox/openapi.json")
    app.state.sandbox = sandbox
    app.add_exception_handler(Reply, lambda request, exc: exc.response())
    app.add_exception_handler(BooksError, lambda request, exc: json_response(exc.body(), exc.status))
    app.add_middleware(SandboxMiddleware, sandbox=sandbox)

    def base(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    # --- accounts server (per data centre) -----------------------------------------------------------

    @app.get("/{location}/accounts/oauth/serverinfo")
    async def serverinfo(request: Request, location: str):
        sandbox.location(location)
        return json_response(
            {
                "result": "success",
                "locations": {loc: accounts_server(base(request), loc) for loc in sandbox.settings.locations},
            }
        )

    @app.get("/{location}/accounts/oauth/v2/auth")
    async def authorize(request: Request, location: str):
        sandbox.location(location)
        try:
            txn, pending = sandbox.identity.start_authorization(dict(request.query_params))
        except AuthorizeError as exc:
            if exc.redirect:
                return RedirectResponse(exc.redirect, 302)
            return error_page(str(exc))
        users = list(sandbox.identity.users.values())
        return HTMLResponse(
            consent_page(
                txn, pending, users, sandbox.settings.signed_in_user, f"/{location}/accounts/oauth/v2/auth"
            )
        )

    @app.post("/{location}/accounts/oauth/v2/auth")
    async def consent(request: Request, location: str):
        sandbox.location(location)
        form = await request.form()
        try:
            redirect = sandbox.identity.decide(
                str(form.get("txn", "")),
                form.get("decision") == "allow",
                str(form["user"]) if form.get("user") else None,
                base(request),
            )
        except AuthorizeError as exc:
            return error_page(str(exc))
        return RedirectResponse(redirect, 302)

    @app.post("/{location}/accounts/oauth/v2/token")
    async def token(request: Request, location: str):
        sandbox.location(location)
        params = await _oauth_params(request)
        request.scope.setdefault("zoho_sandbox", {})["grant_type"] = params.get("grant_type")
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        try:
            body = sandbox.identity.token(params, location, base(request))
        except OAuthError as exc:
            return json_response(exc.body(), exc.status or sandbox.settings.oauth_error_status, headers)
        return json_response(body, 200, headers)

    @app.post("/{location}/accounts/oauth/v2/token/revoke")
    async def revoke(request: Request, location: str):
        sandbox.location(location)
        params = await _oauth_params(request)
        sandbox.identity.revoke(params.get("token", ""), location)
        return json_response({"status": "success"})

    # --- Books API (per data centre) -------------------------------------------------------------------

    api = "/{location}/api" + BOOKS

    @app.get(f"{api}/organizations")
    async def organizations(request: Request, location: str):
        access = sandbox.guard(request, location, "settings", "READ")
        orgs = [
            o.render()
            for o in sandbox.organisations.values()
            if access.user in o.users and o.location == location and not o.deleted
        ]
        return ok({"organizations": orgs})

    @app.get(f"{api}/organizations/{{organization_id}}")
    async def organization(request: Request, location: str, organization_id: str):
        access = sandbox.guard(request, location, "settings", "READ")
        org = sandbox.organisations.get(organization_id)
        if org is None or org.deleted or org.location != location or access.user not in org.users:
            raise Reply(400, books_error(INVALID_VALUE, "Invalid value passed for organization_id"))
        return ok({"organization": org.render()})

    @app.get(f"{api}/transactionlocks")
    async def transaction_locks(request: Request, location: str):
        access = sandbox.guard(request, location, "settings", "READ")
        org = sandbox.organisation(request, access, location)
        return ok({"transaction_locks": org.render_locks()})

    @app.get(f"{api}/chartofaccounts")
    async def chart_of_accounts(request: Request, location: str):
        access = sandbox.guard(request, location, "accountants", "READ")
        org = sandbox.organisation(request, access, location)
        filter_by = request.query_params.get("filter_by") or sandbox.settings.chart_default_filter
        with sandbox.lock:
            items = [render_account(a) for a in filter_accounts(org, filter_by)]
        chunk, context = _page(request, items, sandbox.settings.max_per_page)
        context |= {
            "report_name": "Chart of Accounts",
            "applied_filter": filter_by,
            "sort_column": "account_code",
        }
        return ok({"chartofaccounts": chunk, "page_context": context})

    @app.get(f"{api}/chartofaccounts/{{account_id}}")
    async def one_account(request: Request, location: str, account_id: str):
        access = sandbox.guard(request, location, "accountants", "READ")
        org = sandbox.organisation(request, access, location)
        found = org.accounts.get(account_id)
        if found is None:
            raise Reply(404, books_error(NOT_FOUND, "The account does not exist."))
        return ok({"account": render_account(found)})

    @app.get(f"{api}/journals")
    async def journals(request: Request, location: str):
        access = sandbox.guard(request, location, "accountants", "READ")
        org = sandbox.organisation(request, access, location)
        with sandbox.lock:
            items = list_journals(org, dict(request.query_params))
        chunk, context = _page(request, items, sandbox.settings.max_per_page)
        context |= {"report_name": "Journals", "sort_column": "entry_number"}
        return ok({"journals": chunk, "page_context": context})

    @app.post(f"{api}/journals")
    async def create_journal(request: Request, location: str):
        access = sandbox.guard(request, location, "accountants", "CREATE")
        org = sandbox.organisation(request, access, location)
        body = sandbox.journal_body(await request.body())
        with sandbox.lock:
            now = sandbox.clock.now()
            reference = body.get("reference_number")
            if (
                reference
                and sandbox.settings.duplicate_reference == "reject"
                and any(j.get("reference_number") == reference for j in org.journals.values())
            ):
                raise BooksError(
                    400, DUPLICATE_REFERENCE, f"A journal with reference {reference} exists already."
                )
            journal = check_journal(org, body, now, default_status=sandbox.settings.default_journal_status)
            saved = save_new_journal(org, journal, now)
            return ok({"journal": render_journal(saved)}, 201, "The journal entry has been created.")

    @app.get(f"{api}/journals/{{journal_id}}")
    async def get_journal(request: Request, location: str, journal_id: str):
        access = sandbox.guard(request, location, "accountants", "READ")
        org = sandbox.organisation(request, access, location)
        with sandbox.lock:
            return ok({"journal": render_journal(sandbox.journal(org, journal_id))})

    @app.put(f"{api}/journals/{{journal_id}}")
    async def update_journal(request: Request, location: str, journal_id: str):
        access = sandbox.guard(request, location, "accountants", "UPDATE")
        org = sandbox.organisation(request, access, location)
        body = sandbox.journal_body(await request.body())
        with sandbox.lock:
            existing = sandbox.journal(org, journal_id)
            journal = check_journal(
                org,
                body,
                sandbox.clock.now(),
                default_status=sandbox.settings.default_journal_status,
                existing=existing,
            )
            org.journals[journal_id] = journal
            return ok({"journal": render_journal(journal)}, 200, "Journal Entry has been updated.")

    @app.delete(f"{api}/journals/{{journal_id}}")
    async def delete_journal(request: Request, location: str, journal_id: str):
        access = sandbox.guard(request, location, "accountants", "DELETE")
        org = sandbox.organisation(request, access, location)
        with sandbox.lock:
            sandbox.journal(org, journal_id)
            remove_journal(org, journal_id)
        return ok({}, 200, "The journal entry has been deleted.")

    @app.post(f"{api}/journals/{{journal_id}}/status/publish")
    async def publish_journal(request: Request, location: str, journal_id: str):
        access = sandbox.guard(request, location, "accountants", "CREATE")
        org = sandbox.organisation(request, access, location)
        with sandbox.lock:
            publish(org, sandbox.journal(org, journal_id), sandbox.clock.now())
        return ok({}, 200, "Journal has been published.")

    add_admin_routes(app, sandbox)
    return app
