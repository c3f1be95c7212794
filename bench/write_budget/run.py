"""How fast the shared write budget grants Graph subscription writes, on SQLite and PostgreSQL.

    uv run python -m bench.write_budget [--engine sqlite|postgresql|both] [--writes 2000]

Every Graph subscription write (create, renew, delete) draws a permit from the budget in the
database and gives it back once answered; a process draws for all its waiting writes in one
transaction and gives back together what was answered meanwhile. With `--processes`
connectors (each what one manager process holds), 1 or 32 writes in flight in each, and a
limit too high to be reached, this measures what the budget itself costs. The figure to
compare with, printed as the ratio, is the rate Graph allows: 500 writes per 20 s, 25 per
second. Below 1, the budget would be what
slows onboarding; far above, pacing costs nothing that matters. One write in flight is the
unbatched case (two transactions per write). Each run checks that every write was granted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid

import psycopg
from psycopg import sql

from pushsync.graph.throttling import WritePacer
from pushsync.store import connect
from pushsync.store.migrations import upgrade
from pushsync.store.write_budget import WriteBudget

GRAPH_RATE = 500 / 20.0  # writes per second per app and tenant
DEFAULT_POSTGRES_URL = os.environ.get(
    "PUSHSYNC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


async def run(url: str, writes: int, processes: int, in_flight: int) -> float:
    """Writes per second `processes` pacers grant, `in_flight` writes under way in each."""
    connectors = [connect(url) for _ in range(processes)]
    for connector in connectors:
        await connector.open()
    await upgrade(connectors[0])
    pacers = [
        WritePacer(WriteBudget(c, "bench", limit=10**9, window=20.0, lease=80.0))
        for c in connectors
    ]
    per_writer = writes // (processes * in_flight)

    async def writer(pacer: WritePacer) -> None:
        for _ in range(per_writer):
            async with pacer.permit(max_hold=10.0):
                await asyncio.sleep(0)  # the write itself is not measured

    started = time.perf_counter()
    await asyncio.gather(*(writer(p) for p in pacers for _ in range(in_flight)))
    seconds = time.perf_counter() - started
    for connector in connectors:
        await connector.close()
    granted = sum(p.writes for p in pacers)
    assert granted == per_writer * processes * in_flight
    return granted / seconds


def postgres_schema() -> tuple[str, str]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(DEFAULT_POSTGRES_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    separator = "&" if "?" in DEFAULT_POSTGRES_URL else "?"
    return schema, f"{DEFAULT_POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"


def drop_schema(schema: str) -> None:
    with psycopg.connect(DEFAULT_POSTGRES_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--processes", type=int, default=2)
    options = parser.parse_args()
    engines = ["sqlite", "postgresql"] if options.engine == "both" else [options.engine]
    print(f"Graph allows {GRAPH_RATE:.0f} subscription writes per second per app and tenant")
    for engine in engines:
        for processes, in_flight in sorted({(1, 1), (1, 32), (options.processes, 32)}):
            if engine == "sqlite":
                with tempfile.TemporaryDirectory() as folder:
                    url = f"sqlite:///{folder}/bench.db"
                    rate = asyncio.run(run(url, options.writes, processes, in_flight))
            else:
                schema, url = postgres_schema()
                try:
                    rate = asyncio.run(run(url, options.writes, processes, in_flight))
                finally:
                    drop_schema(schema)
            print(
                f"{engine:<10} {processes} process(es), {in_flight:>2} in flight each:"
                f" {rate:7.0f} writes/s granted = {rate / GRAPH_RATE:6.1f} x Graph's limit"
            )
