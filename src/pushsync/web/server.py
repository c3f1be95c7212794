"""Running the public listener: uvicorn with httptools and uvloop, N worker processes.

uvicorn was chosen by measurement (docs/decisions.md): on the 2-core reference machine an empty
handler served ~38k requests/s under uvicorn+httptools+uvloop against ~29k under granian.
"""

from __future__ import annotations

import os

import uvicorn

from pushsync.settings import Settings, dump_for_child_process
from pushsync.web.app import SETTINGS_ENV


def serve(settings: Settings) -> None:
    """Block serving the public listener until interrupted."""
    os.environ[SETTINGS_ENV] = dump_for_child_process(settings)
    uvicorn.run(
        "pushsync.web.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        server_header=False,
        date_header=False,
        log_config=None,
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=settings.keep_alive_seconds,
    )
