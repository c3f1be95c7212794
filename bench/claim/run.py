"""Claim-and-complete throughput with N consumer processes, on SQLite and PostgreSQL.

    uv run python -m bench.claim [--engine sqlite|postgresql|both] [--rows 20000] [--batch 100]

Each engine gets a fresh database (a temporary SQLite file; a throw-away PostgreSQL schema),
filled with pending rows outside the measurement. Then `--consumers` processes claim batches
with a lease and complete them until the queue is empty. The baseline in the same run is the
same consumers claiming one row at a time, the way a naive worker would. Every run checks that
each row was completed exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

import psycopg
from psycopg import sql

from pushsync.model.notification import Notification
from pushsync.store import connect
from pushsync.store.inbox import insert_values, utc_text
from pushsync.store.migrations import upgrade
from pushsync.store.notification_queue import NotificationQueue

DEFAULT_POSTGRES_URL = os.environ.get(
    "PUSHSYNC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)

Drained = tuple[list[int], float, float]  # ids completed, started, finished (monotonic)


@dataclass(frozen=True)
class Result:
    engine: str
    batch: int
    consumers: int
    rows: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.rows / self.seconds


async def fill(url: str, rows: int) -> None:
    connector = connect(url)
    await connector.open()
    try:
        await upgrade(connector)
        now = datetime.now(UTC)
        for start in range(0, rows, 5000):
            params = [
                insert_values(
                    Notification(
                        protocol="ews",
                        subscription_id=f"SUB-{n % 50}",
                        event_type="Modified",
                        watermark=f"WM-{n}",
                        item_id=f"ITEM-{n}",
                    ),
                    utc_text(now),
                )
                for n in range(start, min(start + 5000, rows))
            ]
            async with connector.session() as session:
                await session.execute_many("insert_notification", params)
    finally:
        await connector.close()


async def drain(url: str, batch: int) -> Drained:
    """Claim and complete until the queue is empty; returns the ids done and the time span."""
    connector = connect(url)
    await connector.open()
    done: list[int] = []
    try:
        queue = NotificationQueue(connector)
        started = time.monotonic()
        while claimed := await queue.claim(batch):
            ids = [c.id for c in claimed]
            if await queue.complete(ids) != len(ids):
                raise RuntimeError("a lease was lost during the benchmark")
            done.extend(ids)
        return done, started, time.monotonic()
    finally:
        await connector.close()


def consumer(url: str, batch: int, barrier: Barrier, out: Queue[Drained]) -> None:
    barrier.wait()  # all consumers start together, after their imports
    out.put(asyncio.run(drain(url, batch)))


def measure(engine: str, url: str, rows: int, batch: int, consumers: int) -> Result:
    asyncio.run(fill(url, rows))
    context = multiprocessing.get_context("spawn")
    barrier, out = context.Barrier(consumers), context.Queue()
    processes = [
        context.Process(target=consumer, args=(url, batch, barrier, out)) for _ in range(consumers)
    ]
    for process in processes:
        process.start()
    results = [out.get() for _ in processes]
    for process in processes:
        process.join()
    ids = [i for done, _, _ in results for i in done]
    if len(ids) != rows or len(set(ids)) != rows:
        raise RuntimeError(f"{engine}: {len(ids)} completions for {rows} rows")
    span = max(end for _, _, end in results) - min(start for _, start, _ in results)
    return Result(engine, batch, consumers, rows, span)


def sqlite_database() -> str:
    return f"sqlite:///{tempfile.mkdtemp(prefix='bench-claim-')}/pushsync.db"


def postgres_database(admin_url: str) -> tuple[str, str]:
    schema = f"bench_claim_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    separator = "&" if "?" in admin_url else "?"
    return f"{admin_url}{separator}options=-csearch_path%3D{schema}", schema


def drop_schema(admin_url: str, schema: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def run_engine(engine: str, args: argparse.Namespace) -> list[Result]:
    results = []
    for batch, rows in ((1, args.baseline_rows), (args.batch, args.rows)):
        if engine == "sqlite":
            results.append(measure(engine, sqlite_database(), rows, batch, args.consumers))
            continue
        url, schema = postgres_database(args.postgres_url)
        try:
            results.append(measure(engine, url, rows, batch, args.consumers))
        finally:
            drop_schema(args.postgres_url, schema)
    return results


def report(results: list[Result]) -> None:
    header = ("engine", "batch", "consumers", "rows", "seconds", "rows/s")
    print("{:<11}{:>6}{:>10}{:>8}{:>9}{:>9}  ratio".format(*header))
    baseline: dict[str, float] = {}
    for r in results:
        baseline.setdefault(r.engine, r.rate)
        ratio = r.rate / baseline[r.engine]
        print(
            f"{r.engine:<11}{r.batch:>6}{r.consumers:>10}{r.rows:>8}{r.seconds:>9.2f}"
            f"{r.rate:>9.0f}  {ratio:.1f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.claim", description=__doc__)
    parser.add_argument("--engine", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--rows", type=int, default=20000, help="rows for the batched runs")
    parser.add_argument("--baseline-rows", type=int, default=2000, help="rows, one at a time")
    parser.add_argument("--batch", type=int, default=100, help="rows per claim")
    parser.add_argument("--consumers", type=int, default=4, help="consumer processes")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    args = parser.parse_args()
    engines = ["sqlite", "postgresql"] if args.engine == "both" else [args.engine]
    results = [r for engine in engines for r in run_engine(engine, args)]
    report(results)
