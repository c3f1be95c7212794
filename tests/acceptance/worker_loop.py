"""Helpers for the worker's robustness tests: several workers on a thread, a `pushsync worker`
subprocess, convergence on the simulator's calendars, and a watch for out-of-order writes."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pushsync.model.reservation import Reservation
from pushsync.settings import Settings
from pushsync.simulator import SimulatorThread
from pushsync.store import connect
from pushsync.store.reservation_book import Reservations
from tests.acceptance.conftest import ServerProcess, pushsync_command
from tests.acceptance.sync_loop import stored_rows, truth_rows


def stop_worker(worker: subprocess.Popen[bytes], log: Path, server: ServerProcess) -> str:
    """Stop a `worker_process` as systemd would (SIGTERM) and give back its log, printed with
    the receiver's so that both are shown when the test fails."""
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=30)
    output = log.read_text()
    print(output, server.logs())
    return output


def worker_process(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    """A real `pushsync worker` (manager + worker) configured through the environment."""
    env = {**os.environ}
    for name, value in settings.model_dump(mode="json", exclude_unset=True).items():
        if hasattr(settings, name) and value is not None:
            env[f"PUSHSYNC_{name.upper()}"] = value if isinstance(value, str) else _env(value)
    secret = settings.callback_token
    if secret is not None:
        env["PUSHSYNC_CALLBACK_TOKEN"] = secret.get_secret_value()
    for name in ("ews_password", "graph_token", "graph_client_state"):
        value = getattr(settings, name)
        if value is not None:
            env[f"PUSHSYNC_{name.upper()}"] = value.get_secret_value()
    with log.open("ab") as out:
        return subprocess.Popen(
            pushsync_command("worker"), env=env, stdout=out, stderr=subprocess.STDOUT
        )


def _env(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def read_reservations(database_url: str) -> list[Reservation]:
    async def read() -> list[Reservation]:
        connector = connect(database_url)
        await connector.open()
        try:
            return await Reservations(connector).all()
        finally:
            await connector.close()

    return asyncio.run(read())


def converge(
    thread: SimulatorThread,
    database_url: str,
    failed: Callable[[], BaseException | None] = lambda: None,
    deadline_s: float = 60,
) -> set[tuple[Any, ...]]:
    """Wait until the reservations equal the simulator's calendars; fail with the difference."""
    now = thread.call(thread.sim.clock.now)
    start, end = now - timedelta(days=1), now + timedelta(days=120)
    deadline = time.monotonic() + deadline_s
    while True:
        thread.call(thread.sim.exchange.settle)
        truth = truth_rows(thread, start, end)
        stored = stored_rows(read_reservations(database_url), start, end)
        if truth == stored and truth:
            return truth
        failure = failed()
        assert failure is None, f"the sync loop died: {failure!r}"
        if time.monotonic() > deadline:
            missing, extra = sorted(truth - stored), sorted(stored - truth)
            raise AssertionError(
                f"not converged; {len(missing)} missing, e.g. {missing[:3]}; "
                f"{len(extra)} extra, e.g. {extra[:3]}"
            )
        time.sleep(0.3)


def versions(thread: SimulatorThread, database_url: str) -> tuple[dict[Any, Any], dict[Any, Any]]:
    """(truth, stored): natural key -> (change key, last modified), to compare versions."""
    instances = thread.call(thread.sim.exchange.truth)
    truth = {  # EWS sends LastModifiedTime to the second
        (i.mailbox.lower(), i.uid, i.original_start): (
            i.change_key,
            i.last_modified.replace(microsecond=0),
        )
        for i in instances
        if i.response.name != "DECLINE"
    }
    stored = {
        (r.mailbox.lower(), r.uid, r.original_start): (r.change_key, r.last_modified)
        for r in read_reservations(database_url)
    }
    return truth, stored


class Regressions:
    """Polls the reservation table and records every row whose last-modified time went back:
    an older version of a meeting written over a newer one."""

    def __init__(self, database: Path, interval_s: float = 0.05) -> None:
        self._database = database
        self._interval = interval_s
        self._newest: dict[tuple[str, str, str], datetime] = {}
        self.found: list[tuple[Any, ...]] = []
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="regressions", daemon=True)

    def __enter__(self) -> Regressions:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._poll()
            except sqlite3.OperationalError:  # the table is not there yet, or busy
                continue

    def _poll(self) -> None:
        connection = sqlite3.connect(self._database, timeout=5)
        try:
            rows = connection.execute(
                "SELECT mailbox, uid, original_start, last_modified FROM reservation"
            ).fetchall()
        finally:
            connection.close()
        self.polls += 1
        for mailbox, uid, original_start, last_modified in rows:
            if last_modified is None:
                continue
            key, seen = (mailbox, uid, original_start), datetime.fromisoformat(last_modified)
            newest = self._newest.get(key)
            if newest is not None and seen < newest:
                self.found.append((key, newest, seen))
            self._newest[key] = max(seen, newest or seen)
