"""HTTP plumbing of the Xero sandbox: Xero's error bodies, the consent page, and
the middleware that injects faults, counts in-flight calls, adds rate-limit headers and logs requests."""

from __future__ import annotations

import base64
import html
import uuid
from typing import TYPE_CHECKING
from urllib.parse import unquote_plus

from fastapi.responses import HTMLResponse

from mamo_sandboxes.common import FaultMiddleware, Reply, sandbox_error_page

if TYPE_CHECKING:
    from mamo_sandboxes.xero import XeroSandbox
    from mamo_sandboxes.xero_identity import PendingConsent
    from mamo_sandboxes.xero_ledger import Organisation

API = "/api.xro/2.0"


def error_body(number: int, type_: str, message: str, elements: list | None = None) -> dict:
    body = {"ErrorNumber": number, "Type": type_, "Message": message}
    if elements is not None:
        body["Elements"] = elements
    return body


def problem_body(status: int, title: str, detail: str) -> dict:
    return {
        "Type": None,
        "Title": title,
        "Status": status,
        "Detail": detail,
        "Instance": str(uuid.uuid4()),
        "Extensions": {},
    }


# --- middleware and pages ---------------------------------------------------------------------------


def _tenant(scope) -> str | None:
    if not scope["path"].startswith(API):
        return None
    return next(
        (v.decode() for k, v in scope.get("headers", []) if k.decode().lower() == "xero-tenant-id"), None
    )


class SandboxMiddleware(FaultMiddleware):
    """Faults, the per-tenant in-flight count, rate-limit headers and the request log (pure ASGI)."""

    context_key = "xero_sandbox"
    sandbox: XeroSandbox

    def short_path(self, path: str) -> str:
        return path[len(API) :] if path.startswith(API) else path

    def fault_reply(self, fault: dict) -> Reply:
        if fault["kind"] == "error":
            return Reply(
                int(fault["status"]),
                problem_body(int(fault["status"]), "Service Unavailable", "Injected fault"),
            )
        return Reply(
            429,
            problem_body(429, "Too Many Requests", f"Rate limit exceeded: {fault['problem']}"),
            {"Retry-After": str(fault["retry_after"]), "X-Rate-Limit-Problem": str(fault["problem"])},
        )

    def lost_error(self) -> Reply:
        return Reply(500, problem_body(500, "Internal Server Error", "Injected fault"))

    def begin(self, scope) -> str | None:
        tenant = _tenant(scope)
        if tenant:
            with self.sandbox.lock:
                self.sandbox.inflight[tenant] += 1
        return tenant

    def end(self, tenant: str | None) -> None:
        if tenant:
            with self.sandbox.lock:
                self.sandbox.inflight[tenant] -= 1

    def extra_headers(self, ctx: dict) -> list[tuple[bytes, bytes]]:
        return [(k.encode(), v.encode()) for k, v in ctx.get("rate_headers", {}).items()]

    def log_fields(self, scope, ctx: dict, short: str) -> dict:
        return {
            "query": scope.get("query_string", b"").decode(),
            "tenant": ctx.get("tenant") or _tenant(scope),
            "idempotency_key": ctx.get("idempotency_key"),
            "replayed": ctx.get("replayed", False),
        }


def basic_auth(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip()).decode()
    except ValueError:
        return None
    client_id, _, secret = decoded.partition(":")
    return unquote_plus(client_id), unquote_plus(secret)


def consent_page(txn: str, pending: PendingConsent, organisations: dict[str, Organisation]) -> str:
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


def error_page(message: str, status: int = 400) -> HTMLResponse:
    return sandbox_error_page("Xero sandbox", message, status)
