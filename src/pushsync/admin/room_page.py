"""One room's page (admin listener, `/rooms/{mailbox}`): its verdict, since when it is out of
sync and what to do, its subscriptions' history, its last notifications, failed rows and
reservation changes, its last resync and error, and a "resync now" button.

The button POSTs to `/rooms/{mailbox}/resync` with a token only this page carries
(`resync_token`); the admin app checks it together with the browser's Origin and
Sec-Fetch-Site, so another site cannot make an operator's browser ask for resyncs.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime
from html import escape
from urllib.parse import quote

from pushsync.admin.process_status import Fleet
from pushsync.admin.room_status import RoomStatus
from pushsync.admin.status_page import advice, code, out_of_sync_since, page, since_text
from pushsync.store.connector import Row
from pushsync.store.fleet_samples import RECENT_ROWS, RoomHistory


def resync_token(secret: bytes, mailbox: str) -> str:
    """The form token for this room's resync button (the listener's secret, per process)."""
    return hmac.new(secret, mailbox.lower().encode(), hashlib.sha256).hexdigest()


def resync_path(mailbox: str) -> str:
    return f"/rooms/{quote(mailbox, safe='@')}/resync"


def render_room(
    status: RoomStatus,
    room: Row,
    history: RoomHistory,
    noted_since: datetime | None,
    now: datetime,
    *,
    token: str,
    queued: bool,
    processes: Fleet | None = None,
) -> bytes:
    noted = (noted_since, status.kind or "") if noted_since else None
    since = out_of_sync_since(status, noted, processes)
    verdict = (
        f'<span class="bad">{code(status.problem)}</span>'
        if status.problem
        else '<span class="ok">in sync</span>'
    )
    header = (
        f"<h1>{escape(status.mailbox)}</h1>"
        f"<p>{'out of sync' if status.problem else 'in sync'} · {now:%Y-%m-%d %H:%M:%S} UTC · "
        '<a href="/">all rooms</a></p>'
    )
    notice = _resync_notice(status) if queued else ""
    facts = _facts(
        [
            ("status", verdict),
            ("out of sync since", since_text(since, now) if status.problem else "-"),
            ("what to do", advice(status.kind) if status.problem else "-"),
            ("protocol", escape(status.protocol)),
            ("subscription", escape(status.subscription_state or "none")),
            ("last heard from Exchange", _time(status.last_heard)),
            ("last resync", _time(status.last_synced_at)),
            ("resync waiting", escape(status.resync_reason or "no")),
            ("throttled until", _time(status.paused_until)),
            ("last error", escape(room.get("last_error") or "none")),
            ("last error at", _time(room.get("last_error_at"))),
            ("waiting / failed rows", f"{status.pending} / {status.failed}"),
        ]
    )
    form = (
        f'<form method="post" action="{resync_path(status.mailbox)}" id="resync">'
        f'<input type="hidden" name="token" value="{token}">'
        '<button type="submit">Resync now</button> <span class="muted">reads the whole '
        "calendar again, as <code>pushsync resync ROOM</code> does</span></form>"
    )
    body = (
        notice
        + f'<div class="card">{facts}<p>{form}</p></div>'
        + _table(
            "Subscriptions",
            "subscriptions",
            history.subscriptions,
            (
                "subscription_id",
                "protocol",
                "state",
                "created_at",
                "expires_at",
                "last_event_at",
                "retired_at",
                "last_error",
            ),
        )
        + _table(
            "Last notifications",
            "notifications",
            history.notifications,
            ("id", "received_at", "event_type", "state", "attempts", "processed_at", "last_error"),
            note=f"among the newest {RECENT_ROWS:,} rows of the notification table",
        )
        + _table(
            "Failed notifications",
            "failed",
            history.failed,
            ("id", "received_at", "event_type", "attempts", "processed_at", "last_error"),
        )
        + _table(
            "Reservation changes",
            "changes",
            history.changes,
            ("changed_at", "change", "uid", "original_start"),
            note=f"among the newest {RECENT_ROWS:,} changes",
        )
    )
    return page(f"pushsync: {status.mailbox}", header, body, bad=bool(status.problem))


def _resync_notice(status: RoomStatus) -> str:
    """After "Resync now": queued until the worker has run it, then done."""
    if status.resync_reason is not None:
        return (
            '<p class="notice" id="resync-queued">Resync queued: the worker reads the room\'s '
            "calendar afresh at its next round; this page shows when it is done.</p>"
        )
    return (
        f'<p class="notice" id="resync-done">Resync done: last resync '
        f"{_time(status.last_synced_at)} UTC.</p>"
    )


def render_unknown_room(given: str, why: str) -> bytes:
    header = '<h1>No such room</h1><p><a href="/">all rooms</a></p>'
    return page("pushsync: no such room", header, f"<p>{escape(why)}</p>", bad=True, refresh=False)


def _facts(pairs: Sequence[tuple[str, str]]) -> str:
    rows = "".join(f"<tr><th>{escape(name)}</th><td>{value}</td></tr>" for name, value in pairs)
    return f'<table id="facts">{rows}</table>'


def _table(
    title: str, id_: str, rows: Sequence[Row], columns: Sequence[str], note: str = ""
) -> str:
    caption = f'<h2>{escape(title)} <span class="muted">{escape(note)}</span></h2>'
    if not rows:
        return f'{caption}<p class="muted" id="{id_}">none</p>'
    head = "".join(f"<th>{escape(c.replace('_', ' '))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(row.get(c))}</td>" for c in columns) + "</tr>" for row in rows
    )
    return f'{caption}<table id="{id_}"><tr>{head}</tr>{body}</table>'


def _cell(value: object) -> str:
    if isinstance(value, datetime):
        return _time(value)
    return escape("" if value is None else str(value))


def _time(value: object) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return f"{value:%Y-%m-%d %H:%M:%S}" if isinstance(value, datetime) else "-"
