"""Login rate limiting: too many failed log-ins for a username or from an address wait a while."""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict, deque

__all__ = ["LoginLimiter"]


class LoginLimiter:
    """Count failed log-ins per key (username, client address) in a sliding window.

    After ``max_failures`` failures within ``window_s`` seconds, further attempts for that key
    are refused until the oldest failure leaves the window. A successful log-in clears the
    username's failures (not the address's, so one good account cannot unlock guessing others).
    """

    def __init__(self, max_failures: int = 5, window_s: float = 900.0) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LoginLimiter(max_failures={self.max_failures}, window_s={self.window_s})"

    def _prune(self, key: str, now: float) -> deque[float]:
        failures = self._failures[key]
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return deque()
        return failures

    def retry_after(self, *keys: str, now: float | None = None) -> int:
        """Seconds to wait before any of ``keys`` may try again (0: go ahead)."""
        clock = time.monotonic() if now is None else now
        wait = 0.0
        with self._lock:
            for key in keys:
                failures = self._prune(key, clock)
                if len(failures) >= self.max_failures:
                    wait = max(wait, failures[0] + self.window_s - clock)
        return math.ceil(wait)

    def failed(self, *keys: str, now: float | None = None) -> None:
        """Record one failed attempt for each of ``keys``."""
        clock = time.monotonic() if now is None else now
        with self._lock:
            for key in keys:
                self._failures[key].append(clock)

    def succeeded(self, key: str) -> None:
        """Forget the failures of ``key`` after a successful log-in."""
        with self._lock:
            self._failures.pop(key, None)
