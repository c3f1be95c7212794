"""The operator's status page (admin listener, `/`): which pushsync process is down since when,
how many rooms are in sync, the fleet's last 24 hours as small charts, and for each room that is
not in sync, why, since when, and what to do about it.

Drawn on the server (charts as inline SVG, `charts.py`); the only script reloads the page every
`REFRESH_SECONDS` and keeps the scroll position. Every value from the database is escaped.
The charts read the worker's minute samples (`store/fleet_samples.py`): one aggregate query over
at most 1,440 minutes, whatever the number of rooms.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

from pushsync.admin.charts import Series, chart
from pushsync.admin.process_status import Fleet
from pushsync.admin.room_status import RoomStatus, Totals
from pushsync.store.connector import Row

# Rooms listed with a problem, the worst kinds first: the totals count them all, and each kind
# links to its full list (/rooms?state=KIND, a page at a time).
ATTENTION = 50
REFRESH_SECONDS = 30
HISTORY = timedelta(hours=24)

# What an operator can do about each kind of problem (room_status.PROBLEM_KINDS).
ADVICE = {
    "no worker": "Start `pushsync worker` (or see why it stopped: its log, `journalctl`). The "
    "notifications wait in the table; the worker works them off when it is back.",
    "polling failed": "Graph refuses both a subscription and reads for this room (an "
    "application access policy that leaves it out): widen the policy; nothing syncs the room.",
    "polling": "Graph refused a subscription (on-premises mailbox, access policy, the 1,000 cap); "
    "the worker reads the room every few minutes instead. Lift the refusal named in the text.",
    "no subscription": "Check that `pushsync worker` runs; the error names why Subscribe failed "
    "(a mistyped or removed room: fix PUSHSYNC_ROOMS). Then `pushsync subscriptions sync`.",
    "subscription broken": "The worker's manager replaces it at its next check. If it stays "
    "broken, check that the public URL reaches the receiver (`pushsync doctor`).",
    "silent": "Exchange stopped sending heartbeats: check the public URL, proxy and firewall; "
    "the manager subscribes the room again.",
    "notifications failed": "Fix the cause named in the error, then resync the room "
    "(its page, or `pushsync resync ROOM`) to repair what the failed rows missed.",
    "behind": "Check that `pushsync worker` runs and is not throttled; "
    "`pushsync notifications list --room ROOM --state pending` shows what waits.",
    "throttled": "Nothing to do: the worker waits out Exchange's back-off. If it recurs, "
    "lower PUSHSYNC_EWS_MAX_CONCURRENCY.",
    "unreachable": "Exchange, Graph or the token authority does not answer: check the network "
    "and credentials. The rows wait; nothing is lost.",
    "error": "Read the error; once its cause is fixed, resync the room.",
    "resync waiting": "The worker runs it shortly; if it stays, check that `pushsync worker` runs.",
}

STYLE = (
    "body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2733;background:#f4f6f8}"
    "header{padding:16px 28px;background:#176f2c}header.bad{background:#a4161a}"
    "header.ok,header.bad{color:#fff}"
    "header h1{margin:0;font-size:22px}header p{margin:4px 0 0;opacity:.9}"
    "header a{color:#fff}main{padding:12px 28px 40px}"
    "h2{font-size:16px;margin:22px 0 8px}"
    ".charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(350px,1fr));gap:12px}"
    ".chart{margin:0;background:#fff;border:1px solid #dde2e7;border-radius:6px;padding:8px}"
    ".chart figcaption{font-weight:600;margin-bottom:2px}"
    ".chart .plot{fill:#fafbfc;stroke:#e3e7eb}.chart .grid{stroke:#eceff2}"
    ".chart .axis{font-size:10px;fill:#6b7682}.chart .empty{font-size:12px;fill:#98a2ad}"
    ".legend{font-size:12px;color:#4a5561}.legend span{margin-right:12px;white-space:nowrap}"
    ".legend i{display:inline-block;width:10px;height:3px;margin:0 4px 3px 0}"
    "table{border-collapse:collapse;background:#fff;width:100%;border:1px solid #dde2e7}"
    "td,th{border-bottom:1px solid #e6e9ed;padding:5px 10px;text-align:left;vertical-align:top}"
    "th{background:#eef1f4;font-weight:600}td.advice{color:#4a5561;max-width:30em}"
    "#facts th{width:14em}code{font-size:12px;background:#eef1f4;padding:0 3px}"
    ".ok{color:#176f2c}.bad{color:#a4161a}.muted{color:#6b7682}"
    ".card{background:#fff;border:1px solid #dde2e7;border-radius:6px;padding:10px 14px}"
    "button{font:inherit;padding:6px 14px;border-radius:4px;border:1px solid #0b5394;"
    "background:#1565c0;color:#fff;cursor:pointer}"
    ".notice{background:#e6f4ea;border:1px solid #9bd1a8;padding:8px 12px;border-radius:4px}"
)

# Reload every REFRESH_SECONDS, coming back to where the operator had scrolled to.
_REFRESH = (
    "<script>(()=>{const k='pushsync-scroll:'+location.pathname,y=sessionStorage.getItem(k);"
    "if(y!==null){scrollTo(0,+y);sessionStorage.removeItem(k)}"
    f"setTimeout(()=>{{sessionStorage.setItem(k,String(scrollY));location.reload()}},"
    f"{REFRESH_SECONDS * 1000})}})()</script>"
)


def page(title: str, header: str, body: str, *, bad: bool, refresh: bool = True) -> bytes:
    """The frame every admin page shares: a coloured header (red when something is wrong)."""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f'<header class="{"bad" if bad else "ok"}">{header}</header><main>{body}</main>'
        f"{_REFRESH if refresh else ''}</body></html>"
    ).encode()


def room_link(mailbox: str) -> str:
    return f'<a href="/rooms/{quote(mailbox, safe="@")}">{escape(mailbox)}</a>'


def render(
    statuses: Sequence[RoomStatus],
    now: datetime,
    history: Sequence[Row] = (),
    since: Mapping[str, tuple[datetime, str]] | None = None,
    processes: Fleet | None = None,
    discovery: Sequence[Mapping[str, Any]] = (),
    totals: Totals | None = None,
    moving: Sequence[RoomStatus] | None = None,
) -> bytes:
    """`statuses`: the rooms to list, those out of sync first (the worst ATTENTION are shown);
    `totals`: every room counted (None: `statuses` are all the rooms); `moving`: rooms being
    migrated (None: those among `statuses`); `history`: `FleetSamples.history` rows; `since`:
    when each room was first seen out of sync; `processes`: the processes' liveness (None: not
    known); `discovery`: room discovery's last answer per source
    (`room_status.discovery_answers`)."""
    totals = totals or Totals.of(statuses)
    troubled = [s for s in statuses if s.problem][:ATTENTION]
    kinds = sorted(
        ((n, kind) for kind, n in totals.by_kind.items() if kind and n), key=lambda k: -k[0]
    )
    summary = ", ".join(_state_link(kind, f"{n} {kind}") for n, kind in kinds)
    down = processes.problems() if processes is not None else []
    header = (
        f"<h1>pushsync: {totals.in_sync} of {totals.rooms} rooms in sync"
        + (f" · {len(down)} process{'es' if len(down) > 1 else ''} down" if down else "")
        + "</h1>"
        f"<p>{now:%Y-%m-%d %H:%M:%S} UTC · "
        + (f"Needing attention: {summary}. " if totals.troubled else "")
        + f"refreshes every {REFRESH_SECONDS} s · "
        + 'all rooms as JSON: <a href="/rooms">/rooms</a></p>'
    )
    body = (
        _processes_section(processes)
        + _discovery(discovery)
        + "<h2>The last 24 hours "
        + _last_sample(history, now)
        + '</h2><div class="charts">'
        + _charts(history, now)
        + "</div>"
        + _problem_rooms(totals, troubled, now, since or {}, processes)
        + _moving([s for s in statuses if s.migration] if moving is None else moving, totals)
    )
    return page("pushsync status", header, body, bad=bool(totals.troubled or down))


def rooms_path(state: str | None = None, **more: str | int) -> str:
    """/rooms, filtered by `state` (a kind of problem, "problem", "in sync", "moving")."""
    query = {"state": state} if state else {}
    return "/rooms" + ("?" + urlencode(query | more) if query or more else "")


def _state_link(state: str, text: str) -> str:
    return f'<a href="{escape(rooms_path(state))}">{escape(text)}</a>'


def _processes_section(fleet: Fleet | None) -> str:
    if fleet is None:
        return (
            '<section id="processes"><h2>Processes</h2><p class="muted">The processes\' '
            "heartbeats could not be read.</p></section>"
        )
    return processes_section(fleet)


def _discovery(answers: Sequence[Mapping[str, Any]]) -> str:
    """Room discovery's sources whose last answer changed nothing, and why."""
    troubled = [a for a in answers if a["problem"]]
    items = "".join(
        f"<li>{escape(str(a['source']))} ({escape(str(a['checked_at'])[:19])}): "
        f"{escape(str(a['problem']))}</li>"
        for a in troubled
    )
    return f'<p class="bad">Room discovery changed nothing:</p><ul>{items}</ul>' if items else ""


def _moving(moving: Sequence[RoomStatus], totals: Totals) -> str:
    """Rooms `pushsync rooms migrate` is moving between protocols, each with its step."""
    count = max(totals.moving, len(moving))
    if not count:
        return ""
    rows = "".join(
        f"<tr><td>{escape(s.mailbox)}</td><td>{escape(s.protocol)}</td>"
        f"<td>{escape(s.migration or '')}</td></tr>"
        for s in moving[:ATTENTION]
    )
    link = _state_link("moving", "all of them")
    more = f'<p class="muted">and {count - ATTENTION} more: {link}.</p>'
    more = more if count > ATTENTION else ""
    return (
        f"<h2>Moving between protocols: {count}</h2>"
        f"<table><tr><th>room</th><th>read over</th><th>migration</th></tr>{rows}</table>{more}"
    )


def processes_section(fleet: Fleet) -> str:
    """The processes: each one down (or missing) named first, with since when, then the live."""
    problems = fleet.problems()
    lines = "".join(f"<li>{code(line)}</li>" for line in problems)
    alive = [p for p in fleet.processes if p.alive]
    live = ", ".join(escape(f"{p.name} (since {p.started_at:%Y-%m-%d %H:%M} UTC)") for p in alive)
    return (
        '<section id="processes"><h2>Processes</h2>'
        + (f'<ul class="bad card" id="processes-down">{lines}</ul>' if problems else "")
        + (
            f'<p class="ok">Alive: {live}.</p>'
            if alive
            else '<p class="bad">No process is alive.</p>'
        )
        + "</section>"
    )


def _last_sample(history: Sequence[Row], now: datetime) -> str:
    """How fresh the charts are: a worker writes a sample a minute while it runs."""
    if not history:
        return '<span class="muted">(no sample yet: the workers write them)</span>'
    last = history[-1]["minute_at"]
    return (
        f'<span class="muted" id="last-sample">(last sample {last:%H:%M} UTC, '
        f"{duration(now - last)} ago)</span>"
    )


def _charts(history: Sequence[Row], now: datetime) -> str:
    start = now - HISTORY

    def points(column: str) -> list[tuple[datetime, float | None]]:
        return [
            (row["minute_at"], None if row[column] is None else float(row[column]))
            for row in history
        ]

    return "".join(
        (
            chart(
                "Notifications per minute",
                [
                    Series("arrived", "#1565c0", points("received")),
                    Series("worked off", "#2e9d4a", points("worked")),
                ],
                start,
                now,
            ),
            chart(
                "Lag, received to applied",
                [
                    Series("p50", "#2e9d4a", points("lag_p50_seconds")),
                    Series("p99", "#e07b00", points("lag_p99_seconds")),
                ],
                start,
                now,
                " s",
            ),
            chart(
                "Rooms out of sync",
                [Series("rooms", "#a4161a", points("rooms_out_of_sync"))],
                start,
                now,
            ),
            chart(
                "Calls to Exchange / Graph per minute",
                [Series("calls", "#6a3fb5", points("calls"))],
                start,
                now,
            ),
            chart(
                "Throttling (back-offs per minute)",
                [Series("back-offs", "#e07b00", points("throttled"))],
                start,
                now,
            ),
        )
    )


def _problem_rooms(
    totals: Totals,
    troubled: Sequence[RoomStatus],
    now: datetime,
    since: Mapping[str, tuple[datetime, str]],
    processes: Fleet | None,
) -> str:
    if not troubled:
        return "<h2>Rooms</h2>" + _no_trouble(totals, processes)
    rows = "".join(_row(s, now, since, processes) for s in troubled)
    more = (
        f'<p class="muted" id="more-rooms">and {totals.troubled - len(troubled)} more, the worst '
        f"kinds first here: {_state_link('problem', 'all rooms out of sync')} (JSON, a page at "
        "a time), or one kind's from the header.</p>"
        if totals.troubled > len(troubled)
        else ""
    )
    return (
        f'<h2>Rooms out of sync ({totals.troubled})</h2><table id="problem-rooms">'
        "<tr><th>room</th><th>problem</th><th>out of sync since</th><th>what to do</th>"
        "<th>subscription</th><th>last heard</th><th>waiting rows</th></tr>"
        f"{rows}</table>{more}"
    )


def _no_trouble(totals: Totals, processes: Fleet | None) -> str:
    if not totals.rooms:  # no worker recorded a room yet: nothing is known to be in sync
        return (
            '<p class="card">No room is known yet: the worker records the configured rooms '
            "as it starts.</p>"
        )
    if processes is not None and processes.problems():
        return '<p class="bad card">Every room is in sync, but a process is down (above).</p>'
    return '<p class="ok card">Every room is in sync.</p>'


def out_of_sync_since(
    status: RoomStatus, noted: tuple[datetime, str] | None, processes: Fleet | None = None
) -> datetime | None:
    """When the room went out of sync: when a sample first found it so, or earlier evidence
    (the oldest waiting row, the last heartbeat, its worker's death) when that says more."""
    worker_down = processes.down_since("worker", status.protocol) if processes else None
    evidence = {
        "behind": status.oldest_pending,
        "silent": status.last_heard,
        "no worker": worker_down,
    }.get(status.kind or "")
    found = [t for t in (noted[0] if noted else None, evidence) if t is not None]
    return min(found, default=None)


def since_text(at: datetime | None, now: datetime) -> str:
    if at is None:
        return '<span class="muted">not sampled yet</span>'
    return f"{at:%Y-%m-%d %H:%M} UTC <span class=muted>({duration(now - at)})</span>"


def duration(span: timedelta) -> str:
    minutes = max(int(span.total_seconds() // 60), 0)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    return f"{hours // 24} days"


def _row(
    status: RoomStatus,
    now: datetime,
    since: Mapping[str, tuple[datetime, str]],
    processes: Fleet | None,
) -> str:
    when = out_of_sync_since(status, since.get(status.mailbox), processes)
    cells = (
        room_link(status.mailbox),
        code(status.problem or ""),
        since_text(when, now),
        advice(status.kind),
        escape(status.subscription_state or "none"),
        escape(_time(status.last_heard)),
        str(status.pending),
    )
    classes = ("", "bad", "", "advice", "", "", "")
    return (
        f'<tr data-room="{escape(status.mailbox)}">'
        + "".join(f'<td class="{c}">{cell}</td>' for c, cell in zip(classes, cells, strict=True))
        + "</tr>"
    )


def advice(kind: str | None) -> str:
    """What to do about a kind of problem, as HTML (`commands` set as code)."""
    return code(ADVICE.get(kind or "", ""))


def code(text: str) -> str:
    """Escaped, with `commands` set as code."""
    parts = escape(text, quote=False).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _time(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value else ""
