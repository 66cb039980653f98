"""HTTP plumbing of the Zoho Books sandbox: the consent page, and the middleware that injects faults
and logs every request (with its data centre and organisation, never a token)."""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from fastapi.responses import HTMLResponse

from mamo_sandboxes.common import FaultMiddleware, Reply, sandbox_error_page

if TYPE_CHECKING:
    from mamo_sandboxes.zoho import ZohoSandbox
    from mamo_sandboxes.zoho_identity import PendingConsent, User

#: ``/{location}/accounts/…`` and ``/{location}/api/…``: the data centre and the path Zoho would see.
DC_PATH = re.compile(r"^/(?P<location>[a-z]{2})/(?P<server>accounts|api)(?P<rest>/.*)?$")


def books_error(code: int, message: str) -> dict:
    return {"code": code, "message": message}


class SandboxMiddleware(FaultMiddleware):
    """Faults and the request log (pure ASGI), with each call's data centre and organisation."""

    context_key = "zoho_sandbox"
    sandbox: ZohoSandbox

    def short_path(self, path: str) -> str:
        match = DC_PATH.match(path)
        return (match.group("rest") or "/") if match else path

    def fault_reply(self, fault: dict) -> Reply:
        if fault["kind"] == "error":
            return Reply(int(fault["status"]), books_error(5, "Internal error (injected fault)"))
        return Reply(429, books_error(45, self.sandbox.rate_limit_message(fault["problem"])))

    def lost_error(self) -> Reply:
        return Reply(500, books_error(5, "Internal error (injected fault)"))

    def log_fields(self, scope, ctx: dict, short: str) -> dict:
        match = DC_PATH.match(scope["path"])
        query = scope.get("query_string", b"").decode()
        return {
            "short_path": short,
            "location": match.group("location") if match else None,
            "query": _without_secrets(query),
            "organization_id": parse_qs(query).get("organization_id", [None])[0],
        }


def _without_secrets(query: str) -> str:
    """The query string with token and secret values masked (the log is readable over HTTP)."""
    return re.sub(r"((?:^|&)(?:token|refresh_token|client_secret|code)=)[^&]*", r"\1***", query)


def consent_page(txn: str, pending: PendingConsent, users: list[User], signed_in: str, action: str) -> str:
    esc = html.escape
    scopes = "\n".join(f"<li><code>{esc(s)}</code></li>" for s in pending.scopes)
    options = "\n".join(
        f'<option value="{esc(u.email)}"{" selected" if u.email == signed_in else ""}>'
        f"{esc(u.name)} &lt;{esc(u.email)}&gt; (data centre {esc(u.location)})</option>"
        for u in users
    )
    offline = "<p>It asks for offline access (a refresh token).</p>" if pending.offline else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Zoho sandbox: {esc(pending.app.name)} wants access</title></head>
<body>
<h1>{esc(pending.app.name)} would like to access your Zoho Books data</h1>
<p>Signed in to the Zoho sandbox as <strong>{esc(signed_in)}</strong>.</p>
<p>The app asks to:</p><ul>{scopes}</ul>
{offline}
<form method="post" action="{esc(action)}">
<input type="hidden" name="txn" value="{esc(txn)}">
<label>Sign in as another user: <select name="user">
{options}
</select></label>
<button type="submit" name="decision" value="allow">Accept</button>
<button type="submit" name="decision" value="deny">Reject</button>
</form>
</body></html>"""


def error_page(message: str, status: int = 400) -> HTMLResponse:
    return sandbox_error_page("Zoho sandbox", message, status)
