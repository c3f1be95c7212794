"""What one round of a subscription manager (EWS or Graph) did, room by room."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Outcome:
    subscribed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    expired: list[str] = field(default_factory=list)  # watermark refused: subscribed afresh
