"""HTTP plumbing of the Zoho Books sandbox: the consent page, and the middleware that injects faults
and logs every request (with its data centre and organisation, never a token)."""

from __future__ import annotations

import asyncio
import contextvars
import html
import logging
import re
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from fastapi.responses import HTMLResponse

from mamo_sandboxes.common import Reply, lose_response

if TYPE_CHECKING:
    from mamo_sandboxes.zoho import ZohoSandbox
    from mamo_sandboxes.zoho_identity import PendingConsent, User

#: ``/{location}/accounts/…`` and ``/{location}/api/…``: the data centre and the path Zoho would see.
DC_PATH = re.compile(r"^/(?P<location>[a-z]{2})/(?P<server>accounts|api)(?P<rest>/.*)?$")

_dropping = contextvars.ContextVar("zoho_sandbox_dropping", default=False)


class _DropFilter(logging.Filter):
    """Keep uvicorn quiet about a response the sandbox breaks on purpose (a ``lost_response`` fault)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _dropping.get()


logging.getLogger("uvicorn.error").addFilter(_DropFilter())


def books_error(code: int, message: str) -> dict:
    return {"code": code, "message": message}


class SandboxMiddleware:
    """Faults and the request log (pure ASGI); ``/_sandbox`` is left alone."""

    def __init__(self, app, sandbox: ZohoSandbox):
        self.app, self.sandbox = app, sandbox

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].startswith("/_sandbox"):
            return await self.app(scope, receive, send)
        sandbox, path, method = self.sandbox, scope["path"], scope["method"]
        ctx = scope.setdefault("zoho_sandbox", {})
        match = DC_PATH.match(path)
        short = (match.group("rest") or "/") if match else path
        query = scope.get("query_string", b"").decode()
        fault = sandbox.take_fault(method, path, short)
        status: dict[str, int] = {}
        try:
            if fault and fault["kind"] == "delay":
                await asyncio.sleep(float(fault["delay_seconds"]))
            if fault and fault["kind"] in ("error", "rate_limit"):
                if fault["kind"] == "error":
                    reply = Reply(int(fault["status"]), books_error(5, "Internal error (injected fault)"))
                else:
                    reply = Reply(429, books_error(45, sandbox.rate_limit_message(fault["problem"])))
                status["code"] = reply.status
                await reply.response()(scope, receive, send)
                return
            if fault and fault["kind"] == "lost_response":
                status["code"] = await lose_response(
                    self.app,
                    fault,
                    scope,
                    receive,
                    send,
                    Reply(500, books_error(5, "Internal error (injected fault)")),
                    on_drop=lambda: _dropping.set(True),
                )
                return

            async def keep_status(message):
                if message["type"] == "http.response.start":
                    status["code"] = message["status"]
                await send(message)

            await self.app(scope, receive, keep_status)
        finally:
            sandbox.record(
                {
                    "at": sandbox.clock.now().isoformat(),
                    "method": method,
                    "path": path,
                    "short_path": short,
                    "location": match.group("location") if match else None,
                    "query": _without_secrets(query),
                    "status": status.get("code"),
                    "organization_id": parse_qs(query).get("organization_id", [None])[0],
                    "grant_type": ctx.get("grant_type"),
                    "fault": fault["kind"] if fault else None,
                }
            )


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
    return HTMLResponse(
        f"<!doctype html><html><body><h1>Zoho sandbox</h1><p>{html.escape(message)}</p></body></html>", status
    )
