"""How Python values travel to SQLite and back, for every SQLite connection pushsync opens.

sqlite3 keeps its adapters and converters process-wide, so they are installed once, by the
first `SQLiteConnector`, never at import:

- datetimes are stored as ISO-8601 UTC text (a naive one is refused) and read back as aware
  datetimes from columns declared TIMESTAMP; BOOLEAN columns read back as bool;
- lists and tuples travel as JSON, read in SQL with json_each;
- None, bytes and bool get identity adapters. This one is for speed, and it earns its place:
  for any value that is not an exact str, int or float, sqlite3 on Python 3.11 looks for an
  adapter and, finding none, raises and clears an AttributeError per parameter; a notification
  row binds about ten NULLs, which came to roughly a tenth of the receiver's CPU per request
  (docs/benchmarks.md). Adapters written in C turn that into a dictionary hit.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import cast


def _adapt_datetime(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("naive datetimes are not stored; use UTC")
    return value.astimezone(UTC).isoformat()


@functools.cache
def install() -> None:
    """Install the adapters and converters (once per process; later calls do nothing)."""
    sqlite3.register_adapter(datetime, _adapt_datetime)
    sqlite3.register_adapter(list, json.dumps)
    sqlite3.register_adapter(tuple, json.dumps)
    sqlite3.register_adapter(type(None), cast(Callable[[None], None], {}.get))  # None for all
    sqlite3.register_adapter(bytes, bytes)
    sqlite3.register_adapter(bool, int)
    sqlite3.register_converter("TIMESTAMP", lambda raw: datetime.fromisoformat(raw.decode()))
    sqlite3.register_converter("BOOLEAN", lambda raw: raw not in (b"0", b""))
