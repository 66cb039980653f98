"""The admin API every ledger sandbox serves under ``/_sandbox`` (no vendor has one): health, reset,
settings and faults, the clock, the registered apps and the request log. Each sandbox's own admin
module adds its organisations, accounts, journals and grants, and an index at ``/``."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.responses import Response

from mamo_sandboxes.common import LedgerSandbox, Reply, json_response


async def json_body(request: Request) -> dict:
    try:
        data = json.loads(await request.body() or b"{}")
    except ValueError:
        raise Reply(400, {"error": "the body must be JSON"}) from None
    if not isinstance(data, dict):
        raise Reply(400, {"error": "the body must be a JSON object"})
    return data


def admin(fn):
    """Admin handlers answer 400 with the reason for a bad input."""

    @functools.wraps(fn)
    async def wrapper(*args, **kwargs):
        try:
            return await fn(*args, **kwargs)
        except (ValueError, KeyError, TypeError) as exc:
            raise Reply(400, {"error": str(exc)}) from None

    return wrapper


def find_organisation(sandbox: LedgerSandbox, organisation_id: str):
    """The organisation under its vendor's id (Xero's tenant id, Zoho's organization_id), or a 404."""
    if organisation_id not in sandbox.organisations:
        raise Reply(404, {"error": f"no organisation {organisation_id}"})
    return sandbox.organisations[organisation_id]


def add_common_admin_routes(
    app: FastAPI, sandbox: LedgerSandbox, check_fault: Callable[[dict], dict]
) -> None:
    """Mount the admin routes every ledger sandbox shares; ``check_fault`` is the vendor's."""

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

    @app.get("/_sandbox/requests")
    async def request_log(path_contains: str | None = None):
        entries = [e for e in sandbox.requests if path_contains is None or path_contains in e["path"]]
        return json_response({"requests": entries})

    @app.delete("/_sandbox/requests")
    async def clear_log():
        with sandbox.lock:
            sandbox.requests.clear()
        return Response(status_code=204)


def add_organisation_admin_routes(
    app: FastAPI,
    sandbox: LedgerSandbox,
    *,
    id_name: str,
    account_id_key: str,
    render_journal: Callable[[dict], dict],
    upsert_account: Callable[..., dict],
) -> None:
    """Mount the routes on organisations' accounts and journals every ledger sandbox shares.

    ``id_name`` is the vendor's name of an organisation's id (Xero ``tenant_id``, Zoho
    ``organization_id``: the answer's key and the organisation's attribute), ``account_id_key`` that
    of an account's id (``AccountID``, ``account_id``).
    """

    @app.patch("/_sandbox/organisations/{organisation_id}/accounts/{code_or_id}")
    @admin
    async def patch_account(request: Request, organisation_id: str, code_or_id: str):
        """Change an account (by id or code): Xero ``{"Status": "ARCHIVED"}``, Zoho ``{"is_active": false}``
        or ``{"deleted": true}``."""
        org = find_organisation(sandbox, organisation_id)
        account = org.accounts.get(code_or_id) or org.account_by_code(code_or_id)
        if account is None:
            raise Reply(404, {"error": f"no account {code_or_id} in {organisation_id}"})
        with sandbox.lock:
            changes = await json_body(request) | {account_id_key: account[account_id_key]}
            return json_response(upsert_account(org, changes, sandbox.clock.now()))

    @app.get("/_sandbox/organisations/{organisation_id}/journals")
    async def posted_journals(organisation_id: str):
        org = find_organisation(sandbox, organisation_id)
        with sandbox.lock:
            journals = [render_journal(j) for j in org.journals.values()]
        return json_response({id_name: organisation_id, "journals": journals})

    @app.get("/_sandbox/journals/{journal_id}")
    async def one_journal(journal_id: str):
        """Where the hooks' journal links point in a sandbox (the vendor's web app in real life)."""
        for org in sandbox.organisations.values():
            if journal_id in org.journals:
                return json_response(
                    {
                        id_name: getattr(org, id_name),
                        "organisation": org.name,
                        "journal": render_journal(org.journals[journal_id]),
                    }
                )
        raise Reply(404, {"error": f"no journal {journal_id}"})
