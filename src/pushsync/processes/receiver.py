"""Running the listeners: the public one (uvicorn, httptools, uvloop, N worker processes) and
the admin one (a small uvicorn server on a thread of the supervising process).

uvicorn was chosen by measurement (docs/decisions.md): on the 2-core reference machine an empty
handler served ~38k requests/s under uvicorn+httptools+uvloop against ~29k under granian.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from pushsync.admin.app import AdminApp
from pushsync.errors import ConfigError
from pushsync.settings import Settings
from pushsync.web.app import address_filter, callback_token, client_address
from pushsync.web.metrics import MULTIPROC_ENV
from pushsync.web.protocol import Limits, guarded_protocol


def serve(settings: Settings) -> None:
    """Block serving both listeners until interrupted."""
    allowed = address_filter(settings)  # fail here, once, on bad ranges or access settings
    callback_token(settings)
    client_address(settings)
    multiproc_dir = Path(tempfile.mkdtemp(prefix="pushsync-metrics-"))
    os.environ[MULTIPROC_ENV] = str(multiproc_dir)
    try:
        admin = _start_admin(settings, AdminApp(settings, allowed, multiproc_dir))
        try:
            with _stop_is_success():
                _run_public(settings)
        finally:
            _stop_admin(*admin)
    finally:
        shutil.rmtree(multiproc_dir, ignore_errors=True)


class _Stopped(Exception):
    """SIGTERM or SIGINT, after uvicorn's graceful shutdown."""


@contextlib.contextmanager
def _stop_is_success() -> Iterator[None]:
    """uvicorn shuts down gracefully on SIGTERM/SIGINT (stops accepting, lets the requests in
    flight finish, so their rows are committed and answered), then raises the signal again
    with the handlers it found. Found here: ours, which ends serving normally, so the
    metrics folder is removed and the process exits 0 as a service manager expects."""

    def stopped(signum: int, frame: object) -> None:
        raise _Stopped

    previous = {sig: signal.signal(sig, stopped) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    except _Stopped:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run_public(settings: Settings) -> None:
    uvicorn.run(
        "pushsync.web.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        http=guarded_protocol(Limits.from_settings(settings)),  # type: ignore[arg-type]
        lifespan="on",
        access_log=False,
        server_header=False,
        date_header=False,
        log_config=None,
        timeout_keep_alive=settings.keep_alive_seconds,
        # uvicorn would otherwise take X-Forwarded-For from any peer on 127.0.0.1 as the
        # client; forwarding headers are read only by web/access/client_address.py
        proxy_headers=False,
    )


def _stop_admin(server: uvicorn.Server, thread: threading.Thread) -> None:
    """Let the admin listener end its lifespan, which marks the receiver's heartbeat stopped
    (a killed receiver's goes stale instead)."""
    server.should_exit = True
    thread.join(timeout=10)


def _start_admin(settings: Settings, app: AdminApp) -> tuple[uvicorn.Server, threading.Thread]:
    """Start the admin listener on a daemon thread; fail loudly if it cannot bind."""
    config = uvicorn.Config(
        app,
        host=settings.admin_host,
        port=settings.admin_port,
        loop="asyncio",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_config=None,
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="pushsync-admin", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise ConfigError(
                f"admin listener could not start on {settings.admin_host}:{settings.admin_port}"
            )
        time.sleep(0.02)
    return server, thread
