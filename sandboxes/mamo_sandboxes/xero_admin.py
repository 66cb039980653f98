"""The sandbox's admin API under ``/_sandbox`` (not Xero's): what every ledger sandbox serves
(``sandbox_admin``: reset, settings and faults, the clock, apps, the request log) plus Xero's apps,
organisations and their accounts, posted journals and grants without a browser."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request

from mamo_sandboxes.common import json_response
from mamo_sandboxes.sandbox_admin import (
    add_common_admin_routes,
    add_organisation_admin_routes,
    admin,
    find_organisation,
    json_body,
)
from mamo_sandboxes.xero_data import DEFAULT_CLIENT_ID, DEFAULT_REDIRECT_URIS, DEFAULT_SCOPES, DEMO_TENANT_ID
from mamo_sandboxes.xero_http import API
from mamo_sandboxes.xero_ledger import render_journal, update_organisation, upsert_account
from mamo_sandboxes.xero_settings import check_fault

if TYPE_CHECKING:
    from mamo_sandboxes.xero import XeroSandbox


def add_admin_routes(app: FastAPI, sandbox: XeroSandbox) -> None:
    """Mount the admin API (and a small index at ``/``) on ``app``."""
    add_common_admin_routes(app, sandbox, check_fault)
    add_organisation_admin_routes(
        app,
        sandbox,
        id_name="tenant_id",
        account_id_key="AccountID",
        render_journal=render_journal,
        upsert_account=upsert_account,
    )

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

    @app.patch("/_sandbox/organisations/{tenant_id}")
    @admin
    async def patch_organisation(request: Request, tenant_id: str):
        org = find_organisation(sandbox, tenant_id)
        with sandbox.lock:
            update_organisation(org, await json_body(request))
            sandbox.tenant_names[tenant_id] = org.name
        return json_response(org.render())

    @app.post("/_sandbox/organisations/{tenant_id}/accounts")
    @admin
    async def add_account(request: Request, tenant_id: str):
        org = find_organisation(sandbox, tenant_id)
        body = await json_body(request)
        if not body.get("Code") or not body.get("Name") or not body.get("Type"):
            raise ValueError("an account needs Code, Name and Type")
        with sandbox.lock:
            return json_response(upsert_account(org, body, sandbox.clock.now()), 201)

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
