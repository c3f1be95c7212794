"""The simulator's outgoing HTTP to listeners: EWS push, Graph webhooks and their validation."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx


class ListenerClient:
    """The simulator's POSTs to listeners (EWS push, Graph webhooks and their validation), at
    most `slots` in flight; the others wait here for a slot, as deliveries wait in Exchange's
    own queue, and a delivery's timeout starts once it is sent.

    Not httpx's pool for the waiting: it walks every connection and every waiting request each
    time one is sent or returned. With a pool of 1,000 connections at 50,000 rooms that walk
    was 58 % of the simulator's CPU and the simulator, not pushsync, set the fleet's pace
    (py-spy, bench/fleet); with a pool of 100 and no queue of its own, a fleet's heartbeats
    timed out waiting in the pool and Exchange, retrying, dropped the subscriptions."""

    def __init__(self, slots: int) -> None:
        self._slots = asyncio.Semaphore(slots)
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(10.0),
            headers={"User-Agent": "ExchangeServicesClient/15.01"},
            limits=httpx.Limits(max_connections=slots, max_keepalive_connections=slots),
        )

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        async with self._slots:
            return await self._http.post(url, **kwargs)

    async def aclose(self) -> None:
        await self._http.aclose()
