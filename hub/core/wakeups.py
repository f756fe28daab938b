"""Wake long-polling stations the moment a job for them is created.

Each waiting poll registers its own :class:`asyncio.Event` under its station; creating a
job sets every event of that station. :meth:`StationWakeups.notify` may be called from
any thread (sync handlers run in a thread pool), so it hands the work to the event loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

__all__ = ["StationWakeups"]


class StationWakeups:
    """Per-station wake-up events, bound to one running event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiters: defaultdict[str, set[asyncio.Event]] = defaultdict(set)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"StationWakeups(stations={sorted(self._waiters)!r})"

    @contextmanager
    def listen(self, station: str) -> Iterator[asyncio.Event]:
        """Register an event that is set when a job for ``station`` is created."""
        event = asyncio.Event()
        with self._lock:
            self._waiters[station].add(event)
        try:
            yield event
        finally:
            with self._lock:
                waiters = self._waiters.get(station)
                if waiters is not None:
                    waiters.discard(event)
                    if not waiters:
                        del self._waiters[station]

    def notify(self, stations: Iterable[str]) -> None:
        """Wake every poll waiting for any of ``stations``; safe from any thread."""
        with self._lock:
            events = [event for station in set(stations) for event in self._waiters.get(station, ())]
        for event in events:
            if self._loop.is_closed():
                return
            self._loop.call_soon_threadsafe(event.set)
