"""The simulator's outgoing HTTP to listeners: EWS push, Graph webhooks and their validation."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

POOL_CONNECTIONS = 16  # per httpx pool: its bookkeeping per request grows with this


class ListenerClient:
    """The simulator's POSTs to listeners (EWS push, Graph webhooks and their validation), at
    most `slots` in flight; the others wait here for a slot, as deliveries wait in Exchange's
    own queue, and a delivery's timeout starts once it is sent.

    Not httpx's pool for the waiting: it walks every connection and every waiting request each
    time one is sent or returned. With a pool of 1,000 connections at 50,000 rooms that walk
    was 58 % of the simulator's CPU and the simulator, not pushsync, set the fleet's pace
    (py-spy, bench/fleet); with a pool of 100 and no queue of its own, a fleet's heartbeats
    timed out waiting in the pool and Exchange, retrying, dropped the subscriptions. So the
    slots are spread over pools of POOL_CONNECTIONS each, a delivery going to the least busy:
    64 in flight cost what 16 cost in one pool. With 16 in flight in all, the heartbeats of
    50,000 rooms onboarding on two shared cores queued for minutes, and the manager, rightly
    by what it heard, replaced thousands of subscriptions as silent (docs/benchmarks.md)."""

    def __init__(self, slots: int) -> None:
        self._slots = asyncio.Semaphore(slots)
        size = min(slots, POOL_CONNECTIONS)
        self._pools = [
            httpx.AsyncClient(
                timeout=httpx.Timeout(10.0),
                headers={"User-Agent": "ExchangeServicesClient/15.01"},
                limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
            )
            for _ in range(-(-slots // size))
        ]
        self._in_flight = [0] * len(self._pools)

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        async with self._slots:
            index = self._in_flight.index(min(self._in_flight))
            self._in_flight[index] += 1
            try:
                return await self._pools[index].post(url, **kwargs)
            finally:
                self._in_flight[index] -= 1

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()
