"""HTTP plumbing of the Xero sandbox: exact-decimal JSON, Xero's error bodies, the consent page, and
the middleware that injects faults, counts in-flight calls, adds rate-limit headers and logs requests."""

from __future__ import annotations

import asyncio
import base64
import contextvars
import html
import logging
import uuid
from typing import TYPE_CHECKING
from urllib.parse import unquote_plus

from fastapi.responses import HTMLResponse

from mamo_sandboxes.common import Reply, dumps  # noqa: F401 (dumps is re-exported)

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

_silence_broken_response = contextvars.ContextVar("xero_sandbox_dropping", default=False)


class _DropFilter(logging.Filter):
    """Keep uvicorn quiet about a response the sandbox breaks on purpose (a ``lost_response`` fault)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _silence_broken_response.get()


logging.getLogger("uvicorn.error").addFilter(_DropFilter())


class SandboxMiddleware:
    """Faults, the per-tenant in-flight count, rate-limit headers and the request log (pure ASGI)."""

    def __init__(self, app, sandbox: XeroSandbox):
        self.app, self.sandbox = app, sandbox

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].startswith("/_sandbox"):
            return await self.app(scope, receive, send)
        sandbox, path, method = self.sandbox, scope["path"], scope["method"]
        ctx = scope.setdefault("xero_sandbox", {})
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        tenant = headers.get("xero-tenant-id") if path.startswith(API) else None
        fault = sandbox.take_fault(method, path)
        status: dict[str, int] = {}
        if tenant:
            with sandbox.lock:
                sandbox.inflight[tenant] += 1
        try:
            if fault and fault["kind"] == "delay":
                await asyncio.sleep(float(fault["delay_seconds"]))
            if fault and fault["kind"] in ("error", "rate_limit"):
                if fault["kind"] == "error":
                    reply = Reply(
                        int(fault["status"]),
                        problem_body(int(fault["status"]), "Service Unavailable", "Injected fault"),
                    )
                else:
                    reply = Reply(
                        429,
                        problem_body(429, "Too Many Requests", f"Rate limit exceeded: {fault['problem']}"),
                        {
                            "Retry-After": str(fault["retry_after"]),
                            "X-Rate-Limit-Problem": str(fault["problem"]),
                        },
                    )
                status["code"] = reply.status
                await reply.response()(scope, receive, send)
                return
            if fault and fault["kind"] == "lost_response":
                await self._lose(fault, scope, receive, send, status)
                return

            async def send_with_headers(message):
                if message["type"] == "http.response.start":
                    status["code"] = message["status"]
                    extra = [(k.encode(), v.encode()) for k, v in ctx.get("rate_headers", {}).items()]
                    message = {**message, "headers": list(message.get("headers", [])) + extra}
                await send(message)

            await self.app(scope, receive, send_with_headers)
        finally:
            if tenant:
                with sandbox.lock:
                    sandbox.inflight[tenant] -= 1
            sandbox.record(
                {
                    "at": sandbox.clock.now().isoformat(),
                    "method": method,
                    "path": path,
                    "query": scope.get("query_string", b"").decode(),
                    "status": status.get("code"),
                    "tenant": ctx.get("tenant") or tenant,
                    "grant_type": ctx.get("grant_type"),
                    "idempotency_key": ctx.get("idempotency_key"),
                    "replayed": ctx.get("replayed", False),
                    "fault": fault["kind"] if fault else None,
                }
            )

    async def _lose(self, fault: dict, scope, receive, send, status: dict) -> None:
        """Process the request for real, then lose the answer."""
        messages = []

        async def keep(message):
            messages.append(message)

        await self.app(scope, receive, keep)
        if fault["mode"] == "500":
            status["code"] = 500
            await Reply(500, problem_body(500, "Internal Server Error", "Injected fault")).response()(
                scope, receive, send
            )
            return
        if fault["mode"] == "timeout":
            await asyncio.sleep(float(fault["delay_seconds"]) or 30.0)
            status["code"] = messages[0]["status"]
            for message in messages:
                await send(message)
            return
        start = messages[0]
        body = b"".join(m.get("body", b"") for m in messages[1:])
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        status["code"] = 0  # the client never gets a status
        _silence_broken_response.set(True)
        await send({**start, "headers": headers + [(b"content-length", str(len(body) + 64).encode())]})
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
        # returning with the body unfinished makes uvicorn close the connection mid-response


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
    return HTMLResponse(
        f"<!doctype html><html><body><h1>Xero sandbox</h1><p>{html.escape(message)}</p></body></html>", status
    )
