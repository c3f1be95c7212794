"""`pushsync demo --protocol graph`: the whole loop over Graph change notifications, Graph-only:
no EWS configured, the rooms read from the simulator's room list in Places, and a room created
half-way through picked up."""

from __future__ import annotations

import re
import sqlite3
import subprocess
from pathlib import Path

from tests.acceptance.conftest import pushsync_command, run_pushsync


def test_demo_over_graph_passes_its_consistency_check_with_graph_rows_only(
    tmp_path: Path,
) -> None:
    output = run_pushsync(
        "demo",
        "--protocol",
        "graph",
        "--rooms",
        "4",
        "--duration",
        "10",
        "--activity",
        "60",
        cwd=tmp_path,
        timeout=180,
    )
    assert "PASS" in output
    notifications = int(re.search(r"notifications received\s*│\s*(\d+)", output).group(1))
    reservations = int(re.search(r"reservations\s*│\s*(\d+)", output).group(1))
    assert notifications > 0 and reservations > 0

    with sqlite3.connect(tmp_path / "var/demo/pushsync.db") as db:
        protocols = dict(db.execute("SELECT protocol, count(*) FROM sync_notification GROUP BY 1"))
        subscribed = dict(db.execute("SELECT protocol, count(*) FROM subscription GROUP BY 1"))
        event_types = {
            t for (t,) in db.execute("SELECT DISTINCT event_type FROM sync_notification")
        }
        rooms = {
            mailbox: (source, capacity)
            for mailbox, source, capacity in db.execute(
                "SELECT mailbox, discovered_from, capacity FROM room"
            )
        }
    assert protocols == {"graph": notifications}  # every row came over Graph, none over EWS
    assert subscribed == {"graph": 5}  # the 4 rooms and the one created half-way through
    assert rooms["annex-1@contoso.example"] == ("all-rooms@contoso.example", 30)
    assert {source for source, _ in rooms.values()} == {"all-rooms@contoso.example"}
    assert event_types <= {"created", "updated", "deleted"} and "created" in event_types


def test_demo_refuses_an_unknown_protocol(tmp_path: Path) -> None:
    result = subprocess.run(
        pushsync_command("demo", "--protocol", "carrier-pigeon", "--duration", "1"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "carrier-pigeon" in result.stdout + result.stderr
