"""Named SQL statements, loaded from `sql/<dialect>/*.sql`.

A file holds statements each introduced by a line `-- name: <name>`; comments above the first
name are the file's own. Statements are never built with string formatting.
"""

from __future__ import annotations

import re
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def load_queries(dialect: str) -> dict[str, str]:
    """All named statements of one dialect."""
    queries: dict[str, str] = {}
    folder = resources.files("pushsync.store") / "sql" / dialect
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".sql"):
            queries.update(parse_queries(entry.read_text(encoding="utf-8")))
    return queries


def parse_queries(text: str) -> dict[str, str]:
    parts = _NAME.split(text)
    # parts = [preamble, name1, body1, name2, body2, ...]
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


def load_migrations(dialect: str) -> list[tuple[int, str, str]]:
    """(version, name, script) of every migration of one dialect, oldest first."""
    folder = resources.files("pushsync.store") / "migrations" / dialect
    migrations = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version, _, name = entry.name.removesuffix(".sql").partition("_")
            migrations.append((int(version), name, entry.read_text(encoding="utf-8")))
    return sorted(migrations)
