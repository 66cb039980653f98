"""Pieces every sandbox needs: a clock tests can move, per-key sliding-window rate limits, exact-decimal
JSON, an answer raised from deep inside a handler, and the "lost response" fault."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from fastapi.responses import Response


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


class Reply(Exception):
    """Answer now with ``status`` and a JSON ``body`` (raised from deep inside a handler)."""

    def __init__(self, status: int, body: Any, headers: dict | None = None):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}

    def response(self) -> Response:
        content = self.body if isinstance(self.body, bytes) else dumps(self.body)
        return Response(content, self.status, self.headers, media_type="application/json; charset=utf-8")


async def lose_response(
    app: Callable[..., Awaitable[None]],
    fault: dict,
    scope,
    receive,
    send,
    error: Reply,
    on_drop: Callable[[], None] | None = None,
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
    if on_drop is not None:
        on_drop()
    await send({**start, "headers": headers + [(b"content-length", str(len(body) + 64).encode())]})
    await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
    # returning with the body unfinished makes uvicorn close the connection mid-response
    return 0
