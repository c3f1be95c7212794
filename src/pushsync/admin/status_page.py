"""The operator's status page (admin listener, `/`): how many rooms are in sync, and for each
room that is not, why. Plain HTML without scripts; every value is escaped."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from html import escape
from typing import Any

from pushsync.admin.room_status import RoomStatus

MAX_ROWS = 1000  # rooms listed with a problem; the JSON at /rooms has them all

_STYLE = (
    "body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse}"
    "td,th{border-bottom:1px solid #ddd;padding:4px 10px;text-align:left}"
    ".ok{color:#176f2c}.bad{color:#a4161a}"
)


def render(
    statuses: list[RoomStatus], now: datetime, discovery: list[dict[str, Any]] | None = None
) -> bytes:
    troubled = [s for s in statuses if s.problem]
    kinds = Counter(s.kind for s in troubled if s.kind)
    summary = ", ".join(f"{n} {escape(kind)}" for kind, n in kinds.most_common())
    head = (
        f"<h1>pushsync: {len(statuses) - len(troubled)} of {len(statuses)} rooms in sync</h1>"
        f"<p>{now:%Y-%m-%d %H:%M:%S} UTC. "
        + (f'<span class="bad">Needing attention: {summary}.</span>' if troubled else "")
        + ' All rooms as JSON: <a href="/rooms">/rooms</a>.</p>'
    )
    rows = "".join(_row(s) for s in troubled[:MAX_ROWS])
    table = (
        "<table><tr><th>room</th><th>protocol</th><th>problem</th><th>subscription</th>"
        "<th>last heard</th><th>last synced</th><th>waiting rows</th></tr>"
        f"{rows}</table>"
        if troubled
        else '<p class="ok">Every room is in sync.</p>'
    )
    page = (
        "<!doctype html><html><head><meta charset=utf-8><title>pushsync status</title>"
        f"<style>{_STYLE}</style></head><body>{head}{_discovery(discovery or [])}{table}"
        f"{_moving(statuses)}</body></html>"
    )
    return page.encode()


def _discovery(answers: list[dict[str, Any]]) -> str:
    """Room discovery's sources whose last answer changed nothing, and why."""
    troubled = [a for a in answers if a["problem"]]
    items = "".join(
        f"<li>{escape(str(a['source']))} ({escape(str(a['checked_at'])[:19])}): "
        f"{escape(str(a['problem']))}</li>"
        for a in troubled
    )
    return f'<p class="bad">Room discovery changed nothing:</p><ul>{items}</ul>' if items else ""


def _row(status: RoomStatus) -> str:
    cells = (
        status.mailbox,
        status.protocol,
        status.problem or "",
        status.subscription_state or "none",
        _time(status.last_heard),
        _time(status.last_synced_at),
        str(status.pending),
    )
    return "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in cells) + "</tr>"


def _moving(statuses: list[RoomStatus]) -> str:
    """Rooms `pushsync rooms migrate` is moving between protocols, each with its step."""
    moving = [s for s in statuses if s.migration][:MAX_ROWS]
    if not moving:
        return ""
    rows = "".join(
        f"<tr><td>{escape(s.mailbox)}</td><td>{escape(s.protocol)}</td>"
        f"<td>{escape(s.migration or '')}</td></tr>"
        for s in moving
    )
    return (
        f"<h2>Moving between protocols: {len(moving)}</h2>"
        f"<table><tr><th>room</th><th>read over</th><th>migration</th></tr>{rows}</table>"
    )


def _time(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value else ""
