"""Time: every clock pushsync keeps is a function returning an aware UTC datetime, so tests
and the demo can give the simulator's clock instead."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)
