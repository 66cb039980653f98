"""Pieces every sandbox needs: a clock tests can move, per-key sliding-window rate limits, exact-decimal
JSON, an answer raised from deep inside a handler, and the "lost response" fault.

And what the two ledger sandboxes (Xero, Zoho Books) share: settings checked on ``PATCH
/_sandbox/settings``, armed faults, the request log, and the middleware that injects the faults and
logs each call. Each vendor's answers (error bodies, rate-limit texts, log fields) stay in its own
modules."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import html
import json
import logging
import re
import threading
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

from fastapi.responses import HTMLResponse, Response


class Clock:
    """Real time plus an offset that tests advance (``POST /_sandbox/clock``) to expire tokens."""

    def __init__(self):
        self._offset = 0.0
        self._lock = threading.Lock()

    def time(self) -> float:
        return time.time() + self._offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds

    def reset(self) -> None:
        with self._lock:
            self._offset = 0.0


class SlidingWindowLimiter:
    """At most ``limit`` events per ``window`` seconds per key; ``hit`` returns seconds to wait (0 = allowed)."""

    def __init__(self, clock: Clock, limit: int | None, window: float):
        self.clock, self.limit, self.window = clock, limit, window
        self._events: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def hit(self, key: str) -> float:
        if not self.limit:
            return 0.0
        now = self.clock.time()
        with self._lock:
            events = self._events[key]
            while events and events[0] <= now - self.window:
                events.popleft()
            if len(events) >= self.limit:
                return max(events[0] + self.window - now, 0.001)
            events.append(now)
            return 0.0

    def remaining(self, key: str) -> int | None:
        if not self.limit:
            return None
        now = self.clock.time()
        with self._lock:
            events = self._events[key]
            return max(self.limit - sum(1 for t in events if t > now - self.window), 0)

    def reset(self) -> None:
        with self._lock:
            self._events.clear()


def seconds_until(moment: datetime, clock: Clock) -> float:
    return max((moment - clock.now()) / timedelta(seconds=1), 0.0)


# --- JSON and answers ---------------------------------------------------------------------------------

_DECIMAL_MARK = "\u0000decimal:"
_DECIMAL_OUT = re.compile(r'"\\u0000decimal:([^"]*)"')


def dumps(obj: Any) -> bytes:
    """JSON where ``Decimal`` amounts are written as exact numbers (``184.91``), never via float."""

    def prep(o):
        if isinstance(o, Decimal):
            return _DECIMAL_MARK + str(o)
        if isinstance(o, dict):
            return {k: prep(v) for k, v in o.items()}
        if isinstance(o, list | tuple):
            return [prep(v) for v in o]
        return o

    return _DECIMAL_OUT.sub(r"\1", json.dumps(prep(obj))).encode()


def json_response(payload: Any, status: int = 200, headers: dict | None = None) -> Response:
    return Response(dumps(payload), status, headers, media_type="application/json; charset=utf-8")


class Reply(Exception):
    """Answer now with ``status`` and a JSON ``body`` (raised from deep inside a handler)."""

    def __init__(self, status: int, body: Any, headers: dict | None = None):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}

    def response(self) -> Response:
        content = self.body if isinstance(self.body, bytes) else dumps(self.body)
        return Response(content, self.status, self.headers, media_type="application/json; charset=utf-8")


def sandbox_error_page(title: str, message: str, status: int = 400) -> HTMLResponse:
    """A browser-facing error (authorize and consent pages)."""
    return HTMLResponse(
        f"<!doctype html><html><body><h1>{html.escape(title)}</h1><p>{html.escape(message)}</p></body></html>",
        status,
    )


_dropping = contextvars.ContextVar("sandbox_dropping_response", default=False)


class _DropFilter(logging.Filter):
    """Keep uvicorn quiet about a response a sandbox breaks on purpose (a ``lost_response`` fault)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _dropping.get()


logging.getLogger("uvicorn.error").addFilter(_DropFilter())


async def lose_response(
    app: Callable[..., Awaitable[None]],
    fault: dict,
    scope,
    receive,
    send,
    error: Reply,
) -> int:
    """Process the request for real, then lose the answer (a ``lost_response`` fault); returns the status
    the client saw (0 when the connection broke).

    ``mode`` ``drop`` breaks the connection mid-response, ``500`` answers ``error`` instead, ``timeout``
    answers only after ``delay_seconds``.
    """
    messages = []

    async def keep(message):
        messages.append(message)

    await app(scope, receive, keep)
    if fault["mode"] == "500":
        await error.response()(scope, receive, send)
        return error.status
    if fault["mode"] == "timeout":
        await asyncio.sleep(float(fault["delay_seconds"]) or 30.0)
        for message in messages:
            await send(message)
        return messages[0]["status"]
    start = messages[0]
    body = b"".join(m.get("body", b"") for m in messages[1:])
    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
    _dropping.set(True)
    await send({**start, "headers": headers + [(b"content-length", str(len(body) + 64).encode())]})
    await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
    # returning with the body unfinished makes uvicorn close the connection mid-response
    return 0


# --- the ledger sandboxes: settings, faults, state, middleware -----------------------------------------

FAULT_KINDS = ("lost_response", "error", "rate_limit", "delay")


def check_fault(fault: dict, defaults: dict) -> dict:
    """A fault with every field filled in: ``kind`` (lost_response | error | rate_limit | delay),
    ``method``, ``path``, ``times``, ``mode``, ``status``, ``delay_seconds``, and the vendor's ``defaults``.

    - ``lost_response``: the request is processed, then the answer is lost: ``mode`` ``drop`` (the
      connection breaks mid-response), ``500`` (an error is answered instead), or ``timeout`` (the
      answer comes after ``delay_seconds``).
    - ``error``: answer ``status`` (default 503) without processing.
    - ``rate_limit``: answer 429 without processing (the vendor's ``problem``).
    - ``delay``: wait ``delay_seconds`` before processing.
    """
    if not isinstance(fault, dict) or fault.get("kind") not in FAULT_KINDS:
        raise ValueError(f"a fault needs kind in {FAULT_KINDS}")
    out = {"method": None, "path": "", "times": 1, "mode": "drop", "status": 503} | defaults
    out = out | {"delay_seconds": 0.0} | fault
    if out["mode"] not in ("drop", "500", "timeout"):
        raise ValueError("a lost_response fault's mode is drop, 500 or timeout")
    return out


class SandboxSettings:
    """Base of a ledger sandbox's settings dataclass: ``update`` checks each change against the field's
    type and ``CHOICES``; ``faults`` go through ``check_fault``."""

    CHOICES: ClassVar[dict] = {}

    @staticmethod
    def check_fault(fault: dict) -> dict:
        raise NotImplementedError

    def update(self, changes: dict) -> None:
        known = {f.name for f in dataclasses.fields(self)}
        for key, value in changes.items():
            if key not in known:
                raise ValueError(f"unknown setting {key!r}; known: {sorted(known)}")
            setattr(self, key, self.checked(key, value))

    def checked(self, key: str, value: Any) -> Any:
        """``value`` as setting ``key`` takes it; ValueError when it does not fit."""
        current = getattr(self, key)
        if key == "faults":
            value = [self.check_fault(f) for f in value]
        elif isinstance(current, bool) or isinstance(current, str):
            if type(value) is not type(current):
                raise ValueError(f"setting {key!r} must be a {type(current).__name__}")
        elif isinstance(current, int) and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"setting {key!r} must be an integer")
        if key in self.CHOICES and value not in self.CHOICES[key]:
            raise ValueError(f"setting {key!r} must be one of {self.CHOICES[key]}")
        return value

    def public(self) -> dict:
        return dataclasses.asdict(self)


class LedgerSandbox:
    """Base of a ledger sandbox's state: one lock, a clock, ``reset()`` (the subclass's) restoring a fresh
    state in place, armed faults (``settings.faults``) and the request log (the last 5000 calls)."""

    def __init__(self, clock: Clock | None = None):
        self.clock = clock or Clock()
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        raise NotImplementedError

    def take_fault(self, method: str, path: str, short: str) -> dict | None:
        """The first armed fault matching this request (its ``path`` starts the full path or the
        vendor-relative ``short`` one), with one of its ``times`` used up."""
        with self.lock:
            for fault in self.settings.faults:
                if fault["method"] not in (None, method) or not (
                    path.startswith(fault["path"]) or short.startswith(fault["path"])
                ):
                    continue
                if fault["times"] is not None:
                    if fault["times"] <= 0:
                        continue
                    fault["times"] -= 1
                return dict(fault)
        return None

    def record(self, entry: dict) -> None:
        with self.lock:
            self.requests.append(entry)
            del self.requests[:-5000]


class FaultMiddleware:
    """Injected faults and the request log around a ledger sandbox (pure ASGI); ``/_sandbox`` is left alone.

    A vendor's subclass says how its vendor answers: ``fault_reply`` (an ``error`` or ``rate_limit``
    fault), ``lost_error`` (a ``lost_response`` fault in mode 500), and what its log entries hold
    (``log_fields``); it may count calls in flight (``begin``/``end``) and add headers (``extra_headers``).
    Route handlers leave notes for the log in ``scope[context_key]``.
    """

    context_key = "sandbox"

    def __init__(self, app, sandbox: LedgerSandbox):
        self.app, self.sandbox = app, sandbox

    def short_path(self, path: str) -> str:
        """The path as the vendor documents it (faults may name either)."""
        return path

    def fault_reply(self, fault: dict) -> Reply:
        raise NotImplementedError

    def lost_error(self) -> Reply:
        raise NotImplementedError

    def log_fields(self, scope, ctx: dict, short: str) -> dict:
        return {}

    def begin(self, scope) -> Any:
        return None

    def end(self, started: Any) -> None:
        pass

    def extra_headers(self, ctx: dict) -> list[tuple[bytes, bytes]]:
        return []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].startswith("/_sandbox"):
            return await self.app(scope, receive, send)
        sandbox, path, method = self.sandbox, scope["path"], scope["method"]
        ctx = scope.setdefault(self.context_key, {})
        short = self.short_path(path)
        fault = sandbox.take_fault(method, path, short)
        status: dict[str, int] = {}
        started = self.begin(scope)
        try:
            if fault and fault["kind"] == "delay":
                await asyncio.sleep(float(fault["delay_seconds"]))
            if fault and fault["kind"] in ("error", "rate_limit"):
                reply = self.fault_reply(fault)
                status["code"] = reply.status
                await reply.response()(scope, receive, send)
                return
            if fault and fault["kind"] == "lost_response":
                status["code"] = await lose_response(self.app, fault, scope, receive, send, self.lost_error())
                return

            async def send_noting_status(message):
                if message["type"] == "http.response.start":
                    status["code"] = message["status"]
                    extra = self.extra_headers(ctx)
                    if extra:
                        message = {**message, "headers": list(message.get("headers", [])) + extra}
                await send(message)

            await self.app(scope, receive, send_noting_status)
        finally:
            self.end(started)
            sandbox.record(
                {"at": sandbox.clock.now().isoformat(), "method": method, "path": path}
                | self.log_fields(scope, ctx, short)
                | {
                    "status": status.get("code"),
                    "grant_type": ctx.get("grant_type"),
                    "fault": fault["kind"] if fault else None,
                }
            )
