"""Register the hub in FAIR Data Point indexes: ``POST {"clientUrl": base}`` at start-up and then regularly.

A ping that fails is logged and tried again at the next interval; it never stops the hub.
"""

from __future__ import annotations

import asyncio
import logging

import httpx

__all__ = ["ping_forever", "ping_indexes"]

logger = logging.getLogger(__name__)


async def ping_indexes(
    urls: list[str], base_iri: str, *, transport: httpx.AsyncBaseTransport | None = None
) -> dict[str, int | str]:
    """Ping each index once; return url → HTTP status (or the error's name)."""
    outcome: dict[str, int | str] = {}
    async with httpx.AsyncClient(timeout=10.0, transport=transport) as client:
        for url in urls:
            try:
                response = await client.post(url, json={"clientUrl": f"{base_iri.rstrip('/')}/"})
                outcome[url] = response.status_code
                if response.status_code >= 400:
                    logger.warning("the FAIR Data Point index %s answered %d", url, response.status_code)
            except httpx.HTTPError as exc:
                outcome[url] = type(exc).__name__
                logger.warning("cannot ping the FAIR Data Point index %s: %s", url, type(exc).__name__)
    return outcome


async def ping_forever(urls: list[str], base_iri: str, interval_s: float) -> None:
    """Ping the indexes now and every ``interval_s`` seconds until cancelled."""
    while True:
        await ping_indexes(urls, base_iri)
        await asyncio.sleep(interval_s)
