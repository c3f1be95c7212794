"""The receiver's worker processes read the settings from the same sources as `pushsync serve`
(the environment, the config file, the command line's flags as their variables): no setting,
and no secret, reaches them in an environment variable of its own."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx

from tests.acceptance.conftest import EWS_HEADERS, EWS_PATH, free_port, pushsync_command
from tests.acceptance.hardening import notification

TOKEN = "token-only-in-the-config-file"
CLIENT_STATE = "client-state-only-in-the-config-file"


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def environment(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().partition("=")[::2] for item in raw if item)


def test_workers_read_the_file_and_flags_and_carry_no_secret(tmp_path: Path) -> None:
    config = tmp_path / "pushsync.toml"
    config.write_text(
        f'callback_token = "{TOKEN}"\ngraph_client_state = "{CLIENT_STATE}"\n'
        'allowed_networks = ["127.0.0.0/8"]\n'
    )
    database = tmp_path / "flag.db"
    port, admin_port = free_port(), free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("PUSHSYNC_")} | {
        "PUSHSYNC_HOST": "127.0.0.1",
        "PUSHSYNC_ADMIN_PORT": str(admin_port),
    }
    command = pushsync_command(
        "serve", "--config", str(config), "--database-url", f"sqlite:///{database}",
        "--port", str(port), "--workers", "2",
    )  # fmt: skip
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}{EWS_PATH}"
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.post(
                    f"{url}?token={TOKEN}", content=notification("1"), headers=EWS_HEADERS
                )
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                time.sleep(0.1)
        assert answer.status_code == 200
        assert httpx.post(url, content=notification("2"), headers=EWS_HEADERS).status_code == 403
        workers = [p for p in children(server.pid) if "PUSHSYNC_DATABASE_URL" in environment(p)]
        assert len(workers) >= 2, "the receiver's worker processes"
        for worker in workers:
            text = "\0".join(f"{k}={v}" for k, v in environment(worker).items())
            assert TOKEN not in text and CLIENT_STATE not in text
            assert "RESOLVED" not in text
        with sqlite3.connect(database) as connection:  # the flag's database, in the workers
            assert connection.execute("SELECT count(*) FROM sync_notification").fetchone() == (1,)
    finally:
        server.terminate()
        server.wait(15)
        log.close()
