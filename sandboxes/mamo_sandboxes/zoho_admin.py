"""The Zoho Books sandbox's admin API under ``/_sandbox`` (not Zoho's): reset, settings and faults, the
clock, apps and users, organisations with their accounts and transaction locks, journals, grants
without a browser (headless setups), and the request log."""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.responses import Response

from mamo_sandboxes.common import Reply
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
    Organisation,
    render_journal,
    set_lock,
    update_organisation,
    upsert_account,
)
from mamo_sandboxes.zoho_settings import check_fault

if TYPE_CHECKING:
    from mamo_sandboxes.zoho import ZohoSandbox


async def json_body(request: Request) -> dict:
    try:
        data = json.loads(await request.body() or b"{}")
    except ValueError:
        raise Reply(400, {"error": "the body must be JSON"}) from None
    if not isinstance(data, dict):
        raise Reply(400, {"error": "the body must be a JSON object"})
    return data


def add_admin_routes(app: FastAPI, sandbox: ZohoSandbox) -> None:
    """Mount the admin API (and a small index at ``/``) on ``app``."""
    from mamo_sandboxes.zoho import json_response

    def admin(fn):
        """Admin handlers answer 400 with the reason for a bad input."""

        @functools.wraps(fn)
        async def wrapper(*args, **kwargs):
            try:
                return await fn(*args, **kwargs)
            except (ValueError, KeyError, TypeError) as exc:
                raise Reply(400, {"error": str(exc)}) from None

        return wrapper

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
        with sandbox.lock:
            sandbox.settings.faults.append(fault)
        return json_response({"faults": sandbox.settings.faults}, 201)

    @app.delete("/_sandbox/faults")
    async def clear_faults():
        with sandbox.lock:
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

    def find_org(organization_id: str) -> Organisation:
        if organization_id not in sandbox.organisations:
            raise Reply(404, {"error": f"no organisation {organization_id}"})
        return sandbox.organisations[organization_id]

    @app.patch("/_sandbox/organisations/{organization_id}")
    @admin
    async def patch_organisation(request: Request, organization_id: str):
        """Change ``name``, ``currency_code``, ``time_zone``, ``users``, or ``"deleted": true``."""
        org = find_org(organization_id)
        with sandbox.lock:
            update_organisation(org, await json_body(request))
        return json_response(org.render() | {"deleted": org.deleted})

    @app.put("/_sandbox/organisations/{organization_id}/lock")
    @admin
    async def put_lock(request: Request, organization_id: str):
        """``{"module": "accountant" | "sales" | … | "all", "date": "2026-10-31" | null}``."""
        org = find_org(organization_id)
        body = await json_body(request)
        with sandbox.lock:
            set_lock(org, body.get("module", "all"), body.get("date"), body.get("status", "enabled"))
        return json_response({"transaction_locks": org.render_locks()})

    @app.post("/_sandbox/organisations/{organization_id}/accounts")
    @admin
    async def add_account(request: Request, organization_id: str):
        org = find_org(organization_id)
        with sandbox.lock:
            return json_response(upsert_account(org, await json_body(request), sandbox.clock.now()), 201)

    @app.patch("/_sandbox/organisations/{organization_id}/accounts/{code_or_id}")
    @admin
    async def patch_account(request: Request, organization_id: str, code_or_id: str):
        """Change an account: ``{"is_active": false}`` deactivates it, ``{"deleted": true}`` removes it."""
        org = find_org(organization_id)
        account = org.accounts.get(code_or_id) or org.account_by_code(code_or_id)
        if account is None:
            raise Reply(404, {"error": f"no account {code_or_id} in {organization_id}"})
        with sandbox.lock:
            changes = await json_body(request) | {"account_id": account["account_id"]}
            return json_response(upsert_account(org, changes, sandbox.clock.now()))

    @app.get("/_sandbox/organisations/{organization_id}/journals")
    async def posted_journals(organization_id: str):
        org = find_org(organization_id)
        with sandbox.lock:
            journals = [render_journal(j) for j in org.journals.values()]
        return json_response({"organization_id": organization_id, "journals": journals})

    @app.get("/_sandbox/journals/{journal_id}")
    async def one_journal(journal_id: str):
        """Where the hook's journal links point in the sandbox (Zoho: the journal in the Books web app)."""
        for org in sandbox.organisations.values():
            if journal_id in org.journals:
                return json_response(
                    {
                        "organization_id": org.organization_id,
                        "organisation": org.name,
                        "journal": render_journal(org.journals[journal_id]),
                    }
                )
        raise Reply(404, {"error": f"no journal {journal_id}"})

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

    @app.get("/_sandbox/requests")
    async def request_log(path_contains: str | None = None):
        entries = [e for e in sandbox.requests if path_contains is None or path_contains in e["path"]]
        return json_response({"requests": entries})

    @app.delete("/_sandbox/requests")
    async def clear_log():
        with sandbox.lock:
            sandbox.requests.clear()
        return Response(status_code=204)
