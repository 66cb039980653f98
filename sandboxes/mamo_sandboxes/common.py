"""Pieces every sandbox needs: a clock tests can move, and per-key sliding-window rate limits."""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from datetime import UTC, datetime, timedelta


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
