"""The README's first command, `pushsync demo`, as a user runs it."""

from __future__ import annotations

import re
from pathlib import Path

from tests.acceptance.conftest import run_pushsync


def test_demo_runs_the_whole_loop_and_its_consistency_check_passes(tmp_path: Path) -> None:
    output = run_pushsync(
        "demo", "--rooms", "4", "--duration", "3", "--activity", "60", cwd=tmp_path, timeout=180
    )
    assert "PASS" in output
    notifications = int(re.search(r"notifications received\s*│\s*(\d+)", output).group(1))
    reservations = int(re.search(r"reservations\s*│\s*(\d+)", output).group(1))
    assert notifications > 0 and reservations > 0
    assert (tmp_path / "var/demo/pushsync.db").exists()
    assert "level=" in (tmp_path / "var/demo/pushsync.log").read_text()
