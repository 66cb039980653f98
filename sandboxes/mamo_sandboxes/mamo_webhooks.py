"""The Mamo sandbox's webhooks (MAMO_API.md §8): registrations, the registration ping, and deliveries.

Registration (``POST/GET/PATCH/DELETE /webhooks``) is per business. Before a registration is accepted
the sandbox sends ``POST <url>`` with ``{"ping":"pong"}`` (User-Agent ``Faraday v1.10.4``, and the
``auth_header`` as ``Authorization``) and refuses with 422 ``"Webhook is unreachable"`` unless the URL
answers 2xx. Unknown body fields are dropped silently (§8.1).

Deliveries leave from one background thread (``Deliverer``), never from the request thread and never
under the sandbox's lock: the state only queues (webhook, body) pairs. Settings (§12 rows 25, 26)
repeat, delay, shuffle or drop them; every attempt is kept for ``GET /_sandbox/webhook-deliveries``.
"""

from __future__ import annotations

import json
import queue
import random
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

USER_AGENT = "Faraday v1.10.4"
#: Every event the registration validator accepts: §8.2's names, charge.voided, and the payment.* mirror
#: of each charge.* event (§11). expense.* and card_transaction.* have no published names.
CHARGE_EVENTS = ("succeeded", "failed", "refund_initiated", "refunded", "refund_failed", "card_verified",
                 "authorized", "voided")  # fmt: skip
EVENTS = frozenset(
    [f"{family}.{name}" for family in ("charge", "payment") for name in CHARGE_EVENTS]
    + ["subscription.succeeded", "subscription.failed", "payment_link.create", "payout.processed", "payout.failed"]
)
AUTH_HEADER_MAX = 50


@dataclass
class Webhook:
    id: str
    url: str
    enabled_events: list[str]
    auth_header: str | None = None

    def as_json(self) -> dict:
        return {"id": self.id, "url": self.url, "enabled_events": list(self.enabled_events),
                "auth_header": self.auth_header}  # fmt: skip


def new_webhook_id() -> str:
    return "MPB-WH-" + uuid.uuid4().hex[:10].upper()


def validate(body: Any, current: Webhook | None = None) -> tuple[dict, list[str]]:
    """The registration fields of a request body (unknown fields dropped) and the validation errors.

    For a PATCH (``current`` given) a missing field keeps its current value.
    """
    if not isinstance(body, dict):
        return {}, ["Body must be a JSON object"]
    fields = {
        "url": body.get("url", current.url if current else None),
        "enabled_events": body.get("enabled_events", current.enabled_events if current else None),
        "auth_header": body.get("auth_header", current.auth_header if current else None),
    }
    errors = []
    url = fields["url"]
    if not isinstance(url, str) or not url.strip():
        errors.append("Url can't be blank")
    elif not url.startswith(("http://", "https://")) or len(url) > 2000:
        errors.append("Url is invalid")
    events = fields["enabled_events"]
    if not isinstance(events, list) or not events:
        errors.append("Enabled events can't be blank")
    else:
        for event in events:
            if not isinstance(event, str) or event not in EVENTS:
                errors.append(f"Enabled events contains an invalid event: {event}")
    auth = fields["auth_header"]
    if auth is not None:
        if not isinstance(auth, str):
            errors.append("Auth header must be a string")
        elif len(auth) < 1:
            errors.append("Auth header is too short (minimum is 1 character)")
        elif len(auth) > AUTH_HEADER_MAX:
            errors.append(f"Auth header is too long (maximum is {AUTH_HEADER_MAX} characters)")
    if not errors:
        fields["enabled_events"] = list(dict.fromkeys(events))
    return fields, errors


_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # straight to the URL, like Mamo


def post(url: str, body: bytes, auth_header: str | None, timeout: float) -> tuple[int | None, str | None]:
    """One POST as Mamo sends it: (HTTP status, None) or (None, what went wrong)."""
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    if auth_header is not None:
        headers["Authorization"] = auth_header
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _opener.open(request, timeout=timeout) as answer:
            answer.read()
            return answer.status, None
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except (OSError, ValueError) as exc:  # refused, timed out, bad URL
        return None, type(exc).__name__


def ping(url: str, auth_header: str | None, timeout: float) -> bool:
    status, _ = post(url, b'{"ping":"pong"}', auth_header, timeout)
    return status is not None and 200 <= status < 300


@dataclass
class Delivery:
    """One event for one webhook, rendered when the charge changed."""

    webhook_id: str
    url: str
    auth_header: str | None
    event_type: str
    charge_id: str
    body: bytes
    queued_at: float = field(default_factory=time.monotonic)


class Deliverer:
    """The delivery thread: takes queued deliveries, applies the settings, POSTs them, records each attempt.

    A batch is what is queued once the first delivery's delay has passed; ``reorder`` shuffles it (a
    seeded shuffle, so a test sees the same order each run), ``repeat`` sends each delivery N times
    and ``drop_every`` skips every Nth attempt. Not picklable by design: the sandbox makes a new one
    when it is loaded.
    """

    def __init__(self, settings: Callable[[], Any]):
        self._settings = settings
        self._queue: queue.Queue[tuple[int, Delivery]] = queue.Queue()
        self._lock = threading.Condition()
        self._pending = 0
        self._generation = 0
        self._attempts: list[dict] = []
        self._counter = 0
        self._random = random.Random(0)
        self._thread: threading.Thread | None = None

    def submit(self, deliveries: list[Delivery]) -> None:
        if not deliveries:
            return
        with self._lock:
            self._pending += len(deliveries)
            generation = self._generation
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="mamo-sandbox-webhooks", daemon=True)
                self._thread.start()
        for delivery in deliveries:
            self._queue.put((generation, delivery))

    def attempts(self) -> list[dict]:
        with self._lock:
            return [dict(a) for a in self._attempts]

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every queued delivery has been attempted; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
            return True

    def reset(self) -> None:
        """Forget queued deliveries and attempts (an attempt in flight is still sent, not recorded)."""
        with self._lock:
            self._generation += 1
            self._attempts.clear()
            self._counter = 0
            self._random = random.Random(0)
            self._pending = 0
            self._lock.notify_all()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            delay = float(self._settings().webhook_delay_seconds)
            wait = first[1].queued_at + delay - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            batch = [first]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._send(batch)

    def _send(self, batch: list[tuple[int, Delivery]]) -> None:
        s = self._settings()
        with self._lock:
            current = [d for generation, d in batch if generation == self._generation]
            stale = len(batch) - len(current)
            attempts = [d for d in current for _ in range(s.webhook_repeat)]
            if s.webhook_reorder:
                self._random.shuffle(attempts)
        for delivery in attempts:
            with self._lock:
                self._counter += 1
                number = self._counter
            dropped = bool(s.webhook_drop_every) and number % s.webhook_drop_every == 0
            status, error = (None, "dropped") if dropped else post(
                delivery.url, delivery.body, delivery.auth_header, s.webhook_timeout_seconds)
            with self._lock:
                self._attempts.append({
                    "attempt": number, "webhook_id": delivery.webhook_id, "url": delivery.url,
                    "event_type": delivery.event_type, "charge_id": delivery.charge_id, "dropped": dropped,
                    "status": status, "error": error, "body": json.loads(delivery.body, parse_float=Decimal),
                    "at": datetime.now(UTC).isoformat(),
                })  # fmt: skip
        with self._lock:
            if stale or current:
                self._pending = max(self._pending - len(current), 0)
                self._lock.notify_all()
