"""The sandbox's admin API under ``/_sandbox`` (not Xero's): reset, settings and faults, the clock,
apps, organisations and their accounts, posted journals, grants without a browser, the request log."""

from __future__ import annotations

import functools
import json
import uuid
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from mamo_sandboxes.xero_data import DEFAULT_CLIENT_ID, DEFAULT_REDIRECT_URIS, DEFAULT_SCOPES, DEMO_TENANT_ID
from mamo_sandboxes.xero_http import API, Reply, dumps
from mamo_sandboxes.xero_ledger import Organisation, render_journal, update_organisation, upsert_account
from mamo_sandboxes.xero_settings import check_fault

if TYPE_CHECKING:
    from mamo_sandboxes.xero import XeroSandbox


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


def add_admin_routes(app: FastAPI, sandbox: XeroSandbox) -> None:
    """Mount the admin API (and a small index at ``/``) on ``app``."""

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
        with sandbox.lock:
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
        with sandbox.lock:
            return json_response(upsert_account(org, body, sandbox.clock.now()), 201)

    @app.patch("/_sandbox/organisations/{tenant_id}/accounts/{code_or_id}")
    @admin
    async def patch_account(request: Request, tenant_id: str, code_or_id: str):
        org = find_org(tenant_id)
        account = org.accounts.get(code_or_id) or org.account_by_code(code_or_id)
        if account is None:
            raise Reply(404, {"error": f"no account {code_or_id} in {tenant_id}"})
        with sandbox.lock:
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
        with sandbox.lock:
            sandbox.requests.clear()
        return Response(status_code=204)
