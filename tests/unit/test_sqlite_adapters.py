"""SQLite's value types: installed by the store, not at import; stored values are unchanged."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import UTC, datetime

from pushsync.store import sqlite_types


def test_none_bytes_and_booleans_are_stored_as_before() -> None:
    sqlite_types.install()
    db = sqlite3.connect(":memory:", detect_types=sqlite3.PARSE_DECLTYPES)
    db.execute("CREATE TABLE t (a, b, c, d, e TIMESTAMP)")
    moment = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    db.execute("INSERT INTO t VALUES (?, ?, ?, ?, ?)", (None, b"\x00key", True, False, moment))
    row = db.execute("SELECT a, b, c, d, e, typeof(a), typeof(b), typeof(c) FROM t").fetchone()
    assert row == (None, b"\x00key", 1, 0, moment, "null", "blob", "integer")


def test_importing_pushsync_changes_nothing_process_wide() -> None:
    probe = (
        "import sqlite3\n"
        "before = dict(sqlite3.adapters), dict(sqlite3.converters)\n"
        "import pushsync.store, pushsync.web.app, pushsync.cli.main, pushsync.processes.sync\n"
        "print(sorted(map(str, set(sqlite3.adapters) ^ set(before[0]))),"
        " sorted(set(sqlite3.converters) ^ set(before[1])))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[] []"
