"""Nonces of signed station requests already seen, so a captured request cannot be sent again."""

from __future__ import annotations

import threading
import time

__all__ = ["NonceCache"]


class NonceCache:
    """Remember ``(station, nonce)`` pairs for as long as a signature can be fresh.

    A request is accepted only when its signature is inside the replay window (checked by
    :func:`protocol.verify_request`) and its nonce was not seen within that window.
    """

    def __init__(self, window_s: float, max_entries: int = 1_000_000) -> None:
        self._window_s = window_s
        self._max_entries = max_entries
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"NonceCache(window_s={self._window_s}, entries={len(self._seen)})"

    def remember(self, station: str, nonce: str, *, now: float | None = None) -> bool:
        """Record a nonce; return False when it was already seen (a replay)."""
        clock = time.time() if now is None else now
        with self._lock:
            if len(self._seen) >= self._max_entries or len(self._seen) % 1024 == 0:
                self._forget_older_than(clock - 2 * self._window_s)
            key = (station, nonce)
            if key in self._seen:
                return False
            self._seen[key] = clock
            return True

    def _forget_older_than(self, cutoff: float) -> None:
        for key in [key for key, seen in self._seen.items() if seen < cutoff]:
            del self._seen[key]
