"""Other HTTP servers against uvicorn, measured, not adopted: `uv run --with granian python -m
bench.ingest.servers [--rounds 3] [--duration 6]`.

Would another server lift the ceiling enough to make pushsync's targets reachable? The empty
handler (`bench/ingest/empty_app.py`) under uvicorn + httptools + uvloop (what `pushsync serve`
runs), under granian's ASGI interface and under its RSGI one, and pushsync's own ASGI app
(`pushsync.web.app:create_app`, durable SQLite, without the uvicorn-based hardening of
`web/protocol.py`) under uvicorn and under granian: interleaved rounds, 2 workers each, the
same wrk load as bench/ingest. granian is not a dependency of pushsync: install it only for the
run (`uv run --with granian`), never into the project.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench.ingest import targets
from bench.ingest.load import RssWatch, run_wrk, workers_cpu_seconds

UVICORN = [
    *[sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", "{port}"],
    *["--workers", "2", "--loop", "uvloop", "--http", "httptools", "--lifespan", "on"],
    *["--no-access-log", "--no-server-header", "--no-date-header", "--log-level", "warning"],
    *["--limit-concurrency", "2000"],
]
GRANIAN = [
    *[sys.executable, "-m", "granian", "--host", "127.0.0.1", "--port", "{port}"],
    *["--workers", "2", "--loop", "uvloop", "--http", "1", "--no-ws", "--log-level", "warning"],
    "--no-access-log",
]


def servers(workdir: Path) -> dict[str, Callable[[], targets.Target]]:
    database = workdir / "app.db"
    app_env = targets._pushsync_env(f"sqlite:///{database}")

    def target(name: str, command: list[str], env: dict[str, str] | None = None) -> targets.Target:
        log = workdir / (name.replace(" ", "-").replace("/", "") + ".log")
        return targets.Target(name=name, command=command, env=env or {}, log=log)

    empty = "bench.ingest.empty_app"
    factory = "pushsync.web.app:create_app"
    return {
        "empty, uvicorn": lambda: target("empty, uvicorn", [*UVICORN, f"{empty}:app"]),
        "empty, granian asgi": lambda: target(
            "empty, granian asgi", [*GRANIAN, "--interface", "asgi", f"{empty}:app"]
        ),
        "empty, granian rsgi": lambda: target(
            "empty, granian rsgi", [*GRANIAN, "--interface", "rsgi", f"{empty}:rsgi_app"]
        ),
        "pushsync app, uvicorn": lambda: target(
            "pushsync app, uvicorn", [*UVICORN, "--factory", factory], app_env
        ),
        "pushsync app, granian asgi": lambda: target(
            "pushsync app, granian asgi",
            [*GRANIAN, "--interface", "asgi", "--factory", factory],
            app_env,
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest.servers", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=6)
    parser.add_argument("--only", default="", help="comma-separated server names (default all)")
    args = parser.parse_args()
    workroot = targets.REPO / "var" / "bench"
    workroot.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="servers-", dir=workroot) as tmp:
        for round_ in range(args.rounds):
            workdir = Path(tmp) / str(round_)
            workdir.mkdir()
            for name, make in servers(workdir).items():
                if args.only and name not in args.only.split(","):
                    continue
                _measure(make(), args.duration, f"s{round_}{len(name)}")


def _measure(target: targets.Target, seconds: float, tag: str) -> None:
    target.start()
    assert target.process is not None
    try:
        with RssWatch(target.process.pid) as rss:
            load = {"connections": 256, "threads": 2, "path": targets.EWS_PATH}
            run_wrk(target.url, seconds=2, run_id=f"{tag}w", **load)
            cpu = workers_cpu_seconds(target.process.pid)
            peak = run_wrk(target.url, seconds=seconds, run_id=f"{tag}p", **load)
            cpu = workers_cpu_seconds(target.process.pid) - cpu
    finally:
        target.stop()
    errors = f"  errors {peak.errors}" if peak.errors else ""
    print(
        f"{target.name:>28}: {peak.rate:8,.0f} req/s  p50 {peak.p50_ms:6.1f} ms  p99 "
        f"{peak.p99_ms:6.1f} ms  CPU {1e6 * cpu / max(1, peak.requests):5.0f} us/req  "
        f"RSS {rss.peak_workers / 2**20:5.1f} MB{errors}",
        flush=True,
    )


if __name__ == "__main__":
    main()
