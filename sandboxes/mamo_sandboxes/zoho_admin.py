"""The Zoho Books sandbox's admin API under ``/_sandbox`` (not Zoho's): what every ledger sandbox serves
(``sandbox_admin``: reset, settings and faults, the clock, apps, the request log) plus Zoho's apps and
users, organisations with their accounts and transaction locks, journals, and grants without a
browser (headless setups)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI, Request

from mamo_sandboxes.common import Reply, json_response
from mamo_sandboxes.sandbox_admin import (
    add_common_admin_routes,
    add_organisation_admin_routes,
    admin,
    find_organisation,
    json_body,
)
from mamo_sandboxes.zoho_data import (
    DEFAULT_CLIENT_ID,
    DEFAULT_REDIRECT_URIS,
    DEFAULT_SCOPES,
    DEMO_ORGANIZATION_ID,
    DEMO_USER,
    HOME_LOCATION,
)
from mamo_sandboxes.zoho_identity import OAuthError, accounts_server
from mamo_sandboxes.zoho_ledger import (
    render_journal,
    set_lock,
    update_organisation,
    upsert_account,
)
from mamo_sandboxes.zoho_settings import check_fault

if TYPE_CHECKING:
    from mamo_sandboxes.zoho import ZohoSandbox


def add_admin_routes(app: FastAPI, sandbox: ZohoSandbox) -> None:
    """Mount the admin API (and a small index at ``/``) on ``app``."""
    add_common_admin_routes(app, sandbox, check_fault)
    add_organisation_admin_routes(
        app,
        sandbox,
        id_name="organization_id",
        account_id_key="account_id",
        render_journal=render_journal,
        upsert_account=upsert_account,
    )

    def base(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    @app.get("/")
    async def index(request: Request):
        return json_response(
            {
                "sandbox": "zoho_books",
                "accounts_url": accounts_server(base(request), HOME_LOCATION),
                "data_centres": {
                    loc: {"accounts": f"/{loc}/accounts", "api": f"/{loc}/api/books/v3"}
                    for loc in sandbox.settings.locations
                },
                "admin": "/_sandbox/docs",
                "default_app": {"client_id": DEFAULT_CLIENT_ID, "redirect_uris": list(DEFAULT_REDIRECT_URIS)},
                "demo_organization_id": DEMO_ORGANIZATION_ID,
            }
        )

    @app.post("/_sandbox/apps")
    @admin
    async def register_app(request: Request):
        body = await json_body(request)
        app_ = sandbox.identity.register_app(
            body["client_id"],
            body["client_secret"],
            list(body.get("redirect_uris") or []),
            body.get("name") or "Sandbox app",
            multi_dc=bool(body.get("multi_dc", True)),
            home=body.get("home") or HOME_LOCATION,
        )
        return json_response(app_.public(), 201)

    @app.get("/_sandbox/users")
    async def list_users():
        return json_response({"users": [u.public() for u in sandbox.identity.users.values()]})

    @app.post("/_sandbox/users")
    @admin
    async def add_user(request: Request):
        body = await json_body(request)
        user = sandbox.identity.add_user(body["email"], body["location"], body.get("name") or "Sandbox user")
        return json_response(user.public(), 201)

    @app.get("/_sandbox/users/{email}/refresh_tokens")
    async def refresh_tokens(email: str, client_id: str | None = None):
        """The user's refresh tokens, oldest first (when issued, how many access tokens live); never the tokens."""
        return json_response({"refresh_tokens": sandbox.identity.tokens_of(email, client_id)})

    @app.get("/_sandbox/organisations")
    async def list_organisations():
        return json_response(
            {
                "organisations": [
                    o.render() | {"location": o.location, "users": o.users, "deleted": o.deleted}
                    for o in sandbox.organisations.values()
                ]
            }
        )

    @app.post("/_sandbox/organisations")
    @admin
    async def create_organisation(request: Request):
        org = sandbox.add_organisation(await json_body(request))
        return json_response(org.render() | {"location": org.location}, 201)

    @app.patch("/_sandbox/organisations/{organization_id}")
    @admin
    async def patch_organisation(request: Request, organization_id: str):
        """Change ``name``, ``currency_code``, ``time_zone``, ``users``, or ``"deleted": true``."""
        org = find_organisation(sandbox, organization_id)
        with sandbox.lock:
            update_organisation(org, await json_body(request))
        return json_response(org.render() | {"deleted": org.deleted})

    @app.put("/_sandbox/organisations/{organization_id}/lock")
    @admin
    async def put_lock(request: Request, organization_id: str):
        """``{"module": "accountant" | "sales" | … | "all", "date": "2026-10-31" | null}``."""
        org = find_organisation(sandbox, organization_id)
        body = await json_body(request)
        with sandbox.lock:
            set_lock(org, body.get("module", "all"), body.get("date"), body.get("status", "enabled"))
        return json_response({"transaction_locks": org.render_locks()})

    @app.post("/_sandbox/organisations/{organization_id}/accounts")
    @admin
    async def add_account(request: Request, organization_id: str):
        org = find_organisation(sandbox, organization_id)
        with sandbox.lock:
            return json_response(upsert_account(org, await json_body(request), sandbox.clock.now()), 201)

    @app.post("/_sandbox/grants")
    @admin
    async def issue_grant(request: Request):
        """A first consent without the browser: the token answer plus ``location`` and ``accounts_server``."""
        body = await json_body(request)
        try:
            result = sandbox.identity.issue_grant(
                body.get("client_id") or DEFAULT_CLIENT_ID,
                body.get("user") or DEMO_USER,
                tuple(s.strip() for s in (body.get("scopes") or DEFAULT_SCOPES).split(",") if s.strip()),
                base(request),
            )
        except OAuthError as exc:  # a limit of the accounts server, as the token endpoint answers it
            raise Reply(exc.status or 400, exc.body()) from None
        orgs = [o.organization_id for o in sandbox.organisations.values() if result["user"] in o.users]
        return json_response(result | {"organization_ids": orgs}, 201)
