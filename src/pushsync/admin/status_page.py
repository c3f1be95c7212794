"""The operator's status page (admin listener, `/`): how many rooms are in sync, for each
room that is not, why, and which pushsync process is down since when. Plain HTML without
scripts; every value is escaped."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from html import escape

from pushsync.admin.process_status import Fleet
from pushsync.admin.room_status import RoomStatus

MAX_ROWS = 1000  # rooms listed with a problem; the JSON at /rooms has them all

_STYLE = (
    "body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse}"
    "td,th{border-bottom:1px solid #ddd;padding:4px 10px;text-align:left}"
    ".ok{color:#176f2c}.bad{color:#a4161a}"
)


def render(statuses: list[RoomStatus], now: datetime, processes: Fleet | None = None) -> bytes:
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
        else _no_trouble(statuses, processes)
    )
    page = (
        "<!doctype html><html><head><meta charset=utf-8><title>pushsync status</title>"
        f"<style>{_STYLE}</style></head><body>{head}"
        f"{processes_section(processes) if processes else ''}{table}{_moving(statuses)}"
        "</body></html>"
    )
    return page.encode()


def _no_trouble(statuses: list[RoomStatus], processes: Fleet | None) -> str:
    if not statuses:  # no worker recorded a room yet: nothing is known to be in sync
        return "<p>No room is known yet: the worker records the configured rooms as it starts.</p>"
    if processes is not None and processes.problems():
        return '<p class="bad">Every room is in sync, but a process is down (above).</p>'
    return '<p class="ok">Every room is in sync.</p>'


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


def processes_section(fleet: Fleet) -> str:
    """The processes: each one down (or missing) named first, with since when, then the live."""
    problems = fleet.problems()
    lines = "".join(f"<li>{escape(line)}</li>" for line in problems)
    alive = [p for p in fleet.processes if p.alive]
    live = ", ".join(escape(f"{p.name} (since {p.started_at:%Y-%m-%d %H:%M} UTC)") for p in alive)
    return (
        '<section id="processes"><h2>Processes</h2>'
        + (f'<ul class="bad">{lines}</ul>' if problems else "")
        + (f'<p class="ok">Alive: {live}.</p>' if alive else "<p>No process is alive.</p>")
        + "</section>"
    )
