"""The identity adapters registered for the receiver's hot path store values unchanged."""

from __future__ import annotations

import sqlite3

import pushsync.store.sqlite  # noqa: F401  (registers the adapters)


def test_none_bytes_and_booleans_are_stored_as_before() -> None:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (a, b, c, d)")
    db.execute("INSERT INTO t VALUES (?, ?, ?, ?)", (None, b"\x00key", True, False))
    row = db.execute("SELECT a, b, c, d, typeof(a), typeof(b), typeof(c) FROM t").fetchone()
    assert row == (None, b"\x00key", 1, 0, "null", "blob", "integer")
