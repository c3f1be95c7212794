"""Old code against new, interleaved: `python -m bench.ingest.compare --base REV [--rounds 3]`.

On a shared box req/s moves by ±30 % between runs, so a change is judged by running the code
at `REV` (exported with `git archive` into a temporary folder) and the working tree one after
the other, several rounds, same load, and comparing CPU per request. Per run it prints req/s,
the workers' CPU per request split into the event loop thread and the other threads (the
SQLite writer), and the workers' peak RSS. With `--engine postgresql` every run gets a fresh
database on the server, and the CPU its backends spent per request is printed too ("server"):
the server shares the cores with the receivers, so its work counts.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.ingest import targets
from bench.ingest.load import RssWatch, run_wrk, workers


@dataclass
class Run:
    code: str
    rate: float
    p99_ms: float
    loop_us: float
    other_us: float
    rss_mb: float
    server_us: float = 0.0

    @property
    def cpu_us(self) -> float:
        return self.loop_us + self.other_us


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest.compare", description=__doc__)
    parser.add_argument("--base", default="HEAD", help="git revision to compare against")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=float, default=6)
    parser.add_argument("--connections", type=int, default=256)
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "PUSHSYNC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
        help="server to create a throw-away database on per run (--engine postgresql)",
    )
    args = parser.parse_args()
    workroot = targets.REPO / "var" / "bench"
    workroot.mkdir(parents=True, exist_ok=True)
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="compare-", dir=workroot) as tmp:
        base = Path(tmp) / "base"
        _export(args.base, base)
        trees = {args.base: base / "src", "working tree": targets.REPO / "src"}
        for round_ in range(args.rounds):
            for code, src in trees.items():
                workdir = Path(tmp) / f"{round_}-{len(runs)}"
                workdir.mkdir()
                runs.append(_measure_on_engine(code, src, workdir, args))
                _say(runs[-1])
    print()
    for code in trees:
        mine = [r for r in runs if r.code == code]
        best = min(mine, key=lambda r: r.cpu_us)
        print(f"best of {len(mine)}: ", end="", file=sys.stderr)
        _say(best)


def _export(revision: str, into: Path) -> None:
    into.mkdir()
    archive = into.with_suffix(".tar")
    subprocess.run(
        ["git", "archive", "--output", str(archive), revision, "src"],
        cwd=targets.REPO,
        check=True,
    )
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")


def _measure_on_engine(code: str, src: Path, workdir: Path, args: argparse.Namespace) -> Run:
    if args.engine == "sqlite":
        return _measure(code, src, workdir, args, targets.pushsync_sqlite(workdir, 2))
    name = f"pushsync_compare_{os.getpid()}_{workdir.name.replace('-', '_')}"
    with targets.FreshPostgreSQLDatabase(args.postgres_url, name) as db:
        target = targets.pushsync_postgresql(workdir, 2, db.url)
        return _measure(code, src, workdir, args, target, server=(args.postgres_url, name))


def _measure(
    code: str,
    src: Path,
    workdir: Path,
    args: argparse.Namespace,
    target: targets.Target,
    server: tuple[str, str] | None = None,
) -> Run:
    target.env["PYTHONPATH"] = os.pathsep.join([str(src), str(targets.REPO)])
    target.start()
    assert target.process is not None
    try:
        with RssWatch(target.process.pid) as rss:
            load = {"connections": args.connections, "threads": 2, "path": targets.EWS_PATH}
            run_wrk(target.url, seconds=2, run_id=f"{workdir.name}w", **load)
            pids = workers(target.process.pid)
            before = [_thread_cpu(p) for p in pids]
            server_before = _backends_cpu(*server) if server else {}
            peak = run_wrk(target.url, seconds=args.duration, run_id=f"{workdir.name}p", **load)
            server_after = _backends_cpu(*server) if server else {}
            after = [_thread_cpu(p) for p in pids]
    finally:
        target.stop()
    loop = sum(a[0] - b[0] for a, b in zip(after, before, strict=True))
    other = sum(a[1] - b[1] for a, b in zip(after, before, strict=True))
    backends = sum(cpu - server_before.get(pid, 0.0) for pid, cpu in server_after.items())
    per = 1e6 / max(1, peak.requests)
    rss_mb = rss.peak_workers / 2**20
    return Run(code, peak.rate, peak.p99_ms, loop * per, other * per, rss_mb, backends * per)


def _backends_cpu(server_url: str, database: str) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend connected to `database` (server on this host)."""
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", [database]
        ).fetchall()
    found = {}
    for (pid,) in rows:
        try:
            found[pid] = sum(_thread_cpu(pid))
        except OSError:
            continue
    return found


def _thread_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds of a process's main thread (the event loop) and of all its other threads."""
    main = other = 0.0
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            fields = (task / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        seconds = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        if task.name == str(pid):
            main += seconds
        else:
            other += seconds
    return main, other


def _say(run: Run) -> None:
    print(
        f"{run.code:>14}: {run.rate:8,.0f} req/s  p99 {run.p99_ms:6.1f} ms  "
        f"CPU {run.cpu_us:5.0f} us/req (loop {run.loop_us:4.0f}, other threads "
        f"{run.other_us:4.0f})  RSS {run.rss_mb:5.1f} MB"
        + (f"  server {run.server_us:4.0f} us/req" if run.server_us else ""),
        file=sys.stderr,
        flush=True,
    )


if __name__ == "__main__":
    main()
