"""Driving wrk and watching the receiver's memory while it runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from bench.ingest.targets import CLIENT_STATE

SCRIPT = Path(__file__).with_name("post.lua")


@dataclass
class LoadResult:
    requests: int
    seconds: float
    errors: dict[str, int]
    p50_ms: float
    p99_ms: float
    max_ms: float
    connections: int
    delay_ms: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def ensure_wrk() -> str:
    """The wrk binary; installs the Debian package when it is missing and we may."""
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk not found; installing the Debian package 'wrk'", file=sys.stderr)
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    try:
        subprocess.run([*sudo, "apt-get", "install", "-y", "-q", "wrk"], check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        sys.exit(f"bench/ingest needs wrk: install it with 'apt-get install wrk' ({exc})")
    found = shutil.which("wrk")
    if not found:
        sys.exit("bench/ingest needs wrk: 'apt-get install wrk' did not provide it")
    return found


def run_wrk(
    url: str,
    *,
    seconds: float,
    connections: int,
    threads: int,
    run_id: str,
    delay_ms: int = 0,
    path: str,
    protocol: str = "ews",
) -> LoadResult:
    env = {
        **os.environ,
        "BENCH_RUN": run_id,
        "BENCH_DELAY_MS": str(delay_ms),
        "BENCH_PATH": path,
        "BENCH_PROTOCOL": protocol,
        "BENCH_CLIENT_STATE": CLIENT_STATE,
    }
    command = [
        ensure_wrk(),
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(SCRIPT),
        url,
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            data = json.loads(line.removeprefix("BENCH_RESULT "))
            break
    else:
        sys.exit(f"wrk gave no result (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
    latency = data["latency_us"]
    return LoadResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        errors={k: v for k, v in data["errors"].items() if v},
        p50_ms=latency["p50"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
        connections=connections,
        delay_ms=delay_ms,
    )


def rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def workers(pid: int) -> list[int]:
    """The worker processes of a server: its children, less multiprocessing's helper."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    found = [p for p in found if not _is_resource_tracker(p)]
    return found or [pid]  # uvicorn serves in the supervisor itself when --workers 1


def _is_resource_tracker(pid: int) -> bool:
    try:
        return b"resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def workers_cpu_seconds(supervisor_pid: int) -> float:
    return sum(cpu_seconds(p) for p in workers(supervisor_pid))


class RssWatch:
    """Samples, every half second, the summed RSS of a server's worker processes (the direct
    children of its supervisor) and keeps the highest sum seen."""

    def __init__(self, supervisor_pid: int) -> None:
        self.supervisor_pid = supervisor_pid
        self.peak_workers = 0
        self.peak_supervisor = 0
        self.workers = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> RssWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(0.5):
                return

    def sample(self) -> None:
        found = workers(self.supervisor_pid)
        self.workers = max(self.workers, len(found))
        self.peak_workers = max(self.peak_workers, sum(rss_bytes(p) for p in found))
        self.peak_supervisor = max(self.peak_supervisor, rss_bytes(self.supervisor_pid))
