"""The receiver's group commit into SQLite alone: `python -m bench.ingest.commit`.

No HTTP, no parse in the timed part: rows made from bench/ingest's notification bodies are
committed through `SQLiteConnector.transaction`, the receiver's own path (flock, BEGIN
IMMEDIATE, the subscription lookup, the multi-row INSERT, COMMIT with fdatasync), in batches of
a given size, one process. It prints the CPU per row and the time per commit for:

- **pushsync**: the connection as the receiver opens it;
- **baseline, temp_store=DEFAULT**: the same with SQLite's statement journal allowed to spill
  to a temporary file, as before the sixth round (docs/benchmarks.md);
- **reference, no redelivery index**: the same as pushsync without the unique index on the
  event key, to show what idempotency costs when every event of a busy second falls on a random
  leaf of that index. Not a configuration pushsync can run in: redeliveries would add rows.

and the ratios against the baseline. Every event carries the current time, as in bench/ingest.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvloop

from bench.ingest.inprocess import body
from bench.ingest.targets import REPO
from pushsync.ews.send_notification import parse_send_notification
from pushsync.store import connect
from pushsync.store.connector import Session
from pushsync.store.inbox import insert_values, utc_text
from pushsync.store.migrations import upgrade
from pushsync.store.sqlite import SQLiteConnector

Values = tuple[Any, ...]


def _rows(requests: int) -> list[Values]:
    received_at = utc_text(datetime.now(UTC))
    return [
        insert_values(row, received_at)
        for n in range(requests)
        for row in parse_send_notification(body(n), remote_addr="127.0.0.1")
    ]


def _default_temp_store(connector: SQLiteConnector) -> None:
    connector._open_connection().execute("PRAGMA temp_store = DEFAULT")


def _no_redelivery_index(connector: SQLiteConnector) -> None:
    connector._open_connection().execute("DROP INDEX sync_notification_event_key")


CONFIGURATIONS: dict[str, Callable[[SQLiteConnector], None] | None] = {
    "pushsync": None,
    "baseline, temp_store=DEFAULT": _default_temp_store,
    "reference, no redelivery index": _no_redelivery_index,
}


async def measure(
    database: Path, rows: list[Values], per_commit: int, adjust: Callable[..., None] | None
) -> tuple[float, float]:
    """CPU us per row and wall ms per commit."""
    connector = connect(f"sqlite:///{database}")
    assert isinstance(connector, SQLiteConnector)
    await connector.open()
    await upgrade(connector)
    if adjust is not None:
        adjust(connector)
    batches = [rows[i : i + per_commit] for i in range(0, len(rows), per_commit)]

    def insert(batch: list[Values]) -> Callable[[Session], Any]:
        return lambda session: session.execute_many("insert_notification", batch)

    cpu, wall = time.process_time(), time.perf_counter()
    for batch in batches:
        await connector.transaction(insert(batch))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await connector.close()
    return 1e6 * cpu / len(rows), 1e3 * wall / len(batches)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest.commit", description=__doc__)
    parser.add_argument("--requests", type=int, default=10_000, help="two rows each")
    parser.add_argument("--per-commit", default="10,36,100,300", help="rows per commit")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    rows = _rows(args.requests)
    sizes = [int(size) for size in args.per_commit.split(",")]
    best: dict[tuple[str, int], tuple[float, float]] = {}
    workroot = REPO / "var" / "bench"
    workroot.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="commit-", dir=workroot) as tmp:
        for round_ in range(args.rounds):  # interleaved, best of the rounds
            for size in sizes:
                for name, adjust in CONFIGURATIONS.items():
                    database = Path(tmp) / f"{round_}-{size}-{len(name)}.db"
                    figures = uvloop.run(measure(database, rows, size, adjust))
                    if (name, size) not in best or figures[0] < best[name, size][0]:
                        best[name, size] = figures
    print(f"{len(rows):,} rows, durable SQLite on {workroot}, best of {args.rounds} rounds")
    print(f"{'rows per commit':>34} " + " ".join(f"{size:>14}" for size in sizes))
    for name in CONFIGURATIONS:
        cells = [f"{best[name, s][0]:5.1f} us {best[name, s][1]:5.2f} ms" for s in sizes]
        print(f"{name:>34} " + " ".join(f"{cell:>14}" for cell in cells))
    print("(CPU per row, wall time per commit)")
    for name in CONFIGURATIONS:
        if name.startswith("baseline"):
            continue
        ratios = [best[name, s][0] / best["baseline, temp_store=DEFAULT", s][0] for s in sizes]
        print(f"{name + ' / baseline':>34} " + " ".join(f"{r:>13.2f}x" for r in ratios))


if __name__ == "__main__":
    main()
