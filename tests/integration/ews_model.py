"""SendNotification requests as data, hypothesis strategies that build valid ones and mutate
them, their XML, and a reference reading of the schema: the rows a request must store, or None
when it must be refused.

The reference is written apart from pushsync's parser on purpose: it reads times with
`datetime` arithmetic and a loose pattern checked field by field, where the parser matches the
XML Schema grammar and counts seconds. Both follow docs/notification-table.md ("What a
notification may hold").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

# --- the model -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Text:
    """The content of a text-only element; `mixed` puts a child element in its middle."""

    value: str
    mixed: bool = False


@dataclass(frozen=True)
class Id:
    tag: str  # ItemId, FolderId, ParentFolderId, OldItemId, OldFolderId, OldParentFolderId
    id: str
    change_key: str | None = None


@dataclass(frozen=True)
class Event:
    kind: str
    watermark: Text | None
    timestamp: Text | None
    ids: tuple[Id, ...]
    unread: Text | None = None
    twice: str | None = None  # a child element written twice: "Watermark", "TimeStamp", ...


@dataclass(frozen=True)
class Request:
    subscription: Text
    previous: Text | None
    more: Text | None
    events: tuple[Event, ...] = field(default=())


# --- XML -----------------------------------------------------------------------------------

_TEXT_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"}
# In attributes also the whitespace the parser would turn into spaces, kept by reference.
_ATTR_ESCAPES = _TEXT_ESCAPES | {'"': "&quot;", "\t": "&#9;", "\n": "&#10;"}


def _escape(value: str, escapes: dict[str, str]) -> str:
    return "".join(escapes.get(c, c) for c in value)


def _element(tag: str, text: Text | None) -> str:
    if text is None:
        return ""
    inner = _escape(text.value, _TEXT_ESCAPES)
    if text.mixed:
        middle = len(inner) // 2
        inner = f"{inner[:middle]}<t:x/>{inner[middle:]}"
    return f"<t:{tag}>{inner}</t:{tag}>"


def _id(id_: Id) -> str:
    key = "" if id_.change_key is None else f' ChangeKey="{_escape(id_.change_key, _ATTR_ESCAPES)}"'
    return f'<t:{id_.tag} Id="{_escape(id_.id, _ATTR_ESCAPES)}"{key}/>'


def _event(event: Event) -> str:
    parts = {
        "Watermark": _element("Watermark", event.watermark),
        "TimeStamp": _element("TimeStamp", event.timestamp),
        "UnreadCount": _element("UnreadCount", event.unread),
    }
    ids = "".join(_id(i) for i in event.ids)
    if event.twice == "ItemId" and event.ids:
        ids += _id(event.ids[0])
    order = [parts["Watermark"], parts["TimeStamp"], ids, parts["UnreadCount"]]
    if twice := parts.get(event.twice or ""):
        order.insert(0, twice)
    return f"<t:{event.kind}Event>{''.join(order)}</t:{event.kind}Event>"


def render(request: Request) -> str:
    """The content of the Notification element."""
    return (
        _element("SubscriptionId", request.subscription)
        + _element("PreviousWatermark", request.previous)
        + _element("MoreEvents", request.more)
        + "".join(_event(e) for e in request.events)
    )


# --- the reference reading -----------------------------------------------------------------

EARLIEST = datetime(1, 1, 2, tzinfo=UTC)  # docs/notification-table.md
END = datetime(9999, 12, 31, tzinfo=UTC)
_ID_COLUMNS = {
    "ItemId": ("item_id", "item_change_key"),
    "FolderId": ("folder_id", "folder_change_key"),
    "ParentFolderId": ("parent_folder_id", "parent_folder_change_key"),
    "OldItemId": ("old_item_id", None),
    "OldFolderId": ("old_folder_id", None),
    "OldParentFolderId": ("old_parent_folder_id", None),
}
_COLUMNS = (
    "watermark", "event_time", "item_id", "item_change_key", "folder_id", "folder_change_key",
    "parent_folder_id", "parent_folder_change_key", "old_item_id", "old_folder_id",
    "old_parent_folder_id", "unread_count",
)  # fmt: skip


class Refused(Exception):
    pass


def _is_xml_char(c: str) -> bool:  # XML 1.0 Char
    return (
        c in "\t\n\r"
        or " " <= c <= "\ud7ff"
        or "\ue000" <= c <= "\ufffd"
        or "\U00010000" <= c <= "\U0010ffff"
    )


def _all_values(request: Request) -> list[str]:
    texts = [request.subscription, request.previous, request.more]
    values = [t.value for t in texts if t is not None]
    for event in request.events:
        values += [t.value for t in (event.watermark, event.timestamp, event.unread) if t]
        for i in event.ids:
            values += [i.id] + ([i.change_key] if i.change_key is not None else [])
    return values


def _text(text: Text | None) -> str | None:
    if text is None:
        return None
    if text.mixed:
        raise Refused("mixed content")
    value = text.value.strip(" \t\r\n")  # XML's whitespace, and no other character
    if len(value) > 512:
        raise Refused("too long")
    return value or None


def _time(text: Text | None) -> datetime:  # noqa: C901 (the schema's rules, one by one)
    value = _text(text)
    if value is None or len(value) > 40:
        raise Refused("no time")
    shape = r"(-?\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)"
    match = re.fullmatch(shape, value, re.ASCII)
    if match is None:
        raise Refused("not a dateTime")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    if len(year.lstrip("-")) < 4 or (len(year.lstrip("-")) > 4 and year.lstrip("-")[0] == "0"):
        raise Refused("year")
    if len(month) != 2 or len(day) != 2 or len(hour) != 2 or len(minute) != 2 or len(second) != 2:
        raise Refused("field width")
    if not 1 <= int(year) <= 9999:
        raise Refused("year out of range")
    if int(minute) > 59 or int(second) > 59:
        raise Refused("minute or second")
    end_of_day = hour == "24"
    if end_of_day and (minute, second, (fraction or "0").strip("0")) != ("00", "00", ""):
        raise Refused("24:00:00 only")
    if int(hour) > 24:
        raise Refused("hour")
    try:
        midnight = datetime(int(year), int(month), int(day), tzinfo=UTC)
    except ValueError:
        raise Refused("no such day") from None
    offset = timedelta(0)
    if zone != "Z":
        zone_hours, zone_minutes = int(zone[1:3]), int(zone[4:6])
        if zone_minutes > 59 or zone_hours > 14 or (zone_hours == 14 and zone_minutes):
            raise Refused("zone")
        offset = timedelta(hours=zone_hours, minutes=zone_minutes) * (-1 if zone[0] == "-" else 1)
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        instant = midnight + timedelta(
            hours=int(hour), minutes=int(minute), seconds=int(second), microseconds=micro
        )
        instant -= offset
    except OverflowError:
        raise Refused("out of range") from None
    if not EARLIEST <= instant < END:
        raise Refused("out of range")
    return instant


def _int(text: Text | None) -> int | None:
    if text is None:
        return None
    value = _text(text) or ""
    digits = value[1:] if value[:1] in ("+", "-") else value
    if not digits or any(c not in "0123456789" for c in digits):
        raise Refused("not an int")
    number = int(value)
    if not -(2**31) <= number < 2**31:
        raise Refused("out of xs:int")
    return number


def _boolean(text: Text | None) -> bool | None:
    if text is None:
        return None
    value = {"true": True, "1": True, "false": False, "0": False}.get(_text(text) or "")
    if value is None:
        raise Refused("not a boolean")
    return value


def _attribute(value: str) -> str:
    if len(value) > 512:
        raise Refused("too long")
    return value


def _event_row(event: Event) -> dict[str, Any]:
    if event.twice is not None:
        raise Refused("twice")
    row: dict[str, Any] = dict.fromkeys(_COLUMNS)
    row["watermark"] = _text(event.watermark)
    if event.timestamp is not None or event.kind != "Status":
        row["event_time"] = _time(event.timestamp)
    for id_ in event.ids:
        if not id_.id:
            raise Refused("no Id")
        id_column, key_column = _ID_COLUMNS[id_.tag]
        row[id_column] = _attribute(id_.id)
        if key_column is not None and id_.change_key is not None:
            row[key_column] = _attribute(id_.change_key)
    row["unread_count"] = _int(event.unread)
    return row


def expected_rows(request: Request) -> list[dict[str, Any]] | None:
    """The rows `request` stores, in order, or None if it must be refused (4xx)."""
    if not all(_is_xml_char(c) for value in _all_values(request) for c in value):
        return None  # not well-formed XML
    try:
        subscription = _text(request.subscription)
        if subscription is None:
            raise Refused("no SubscriptionId")
        shared = {
            "subscription_id": subscription,
            "previous_watermark": _text(request.previous),
            "more_events": _boolean(request.more),
            "response_code": None,
        }
        rows = [shared | {"event_type": e.kind} | _event_row(e) for e in request.events]
    except Refused:
        return None
    seen, unique = set(), []
    for row in rows:  # a redelivered event (same key and time) is stored once
        key = (row["watermark"], row["event_time"])
        if row["watermark"] is not None and key in seen:
            continue
        seen.add(key)
        unique.append(row)
    return unique


# --- strategies: valid requests, then mutations --------------------------------------------

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
_PAD = st.text(alphabet=" \t\r\n", max_size=3)
_HOSTILE_CHARS = [
    *"AQz09+/=", " ", "\t", "\n", "\r", "\u00a0", "\u3000", "\u2028", "\u0665", "é", "<", "&",
    '"', "\x01", "\ufffe", "\U0001f600", "\u200b",
]  # fmt: skip


@st.composite
def _padded(draw: st.DrawFn, core: st.SearchStrategy[str]) -> Text:
    return Text(draw(_PAD) + draw(core) + draw(_PAD))


def _b64(min_size: int = 1) -> st.SearchStrategy[str]:
    return st.text(alphabet=_B64, min_size=min_size, max_size=40)


@st.composite
def valid_time(draw: st.DrawFn) -> str:
    instant = draw(st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1)))
    minutes = draw(st.sampled_from([0, 0, 60, -300, 330, 840, -840, -59]))
    local = instant + timedelta(minutes=minutes)
    digits = draw(st.sampled_from([0, 0, 3, 6, 7]))
    stamp = local.strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        stamp += "." + f"{local.microsecond:06d}{draw(st.integers(0, 9))}"[:digits]
    if minutes == 0:
        return stamp + draw(st.sampled_from(["Z", "+00:00", "-00:00"]))
    sign = "+" if minutes > 0 else "-"
    return f"{stamp}{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _valid_ids(kind: str) -> st.SearchStrategy[tuple[Id, ...]]:
    key = st.none() | _b64()
    item = st.builds(Id, st.sampled_from(["ItemId", "FolderId"]), _b64(), key)
    parent = st.builds(Id, st.just("ParentFolderId"), _b64(), key)
    if kind in ("Moved", "Copied"):
        old = st.builds(Id, st.sampled_from(["OldItemId", "OldFolderId"]), _b64(), key)
        old_parent = st.builds(Id, st.just("OldParentFolderId"), _b64(), st.none())
        return st.tuples(item, parent, old, old_parent)
    return st.tuples(item, parent)


@st.composite
def valid_event(draw: st.DrawFn) -> Event:
    kinds = ["Status", "Created", "Deleted", "Modified", "Moved", "Copied", "NewMail"]
    kind = draw(st.sampled_from([*kinds, "FreeBusyChanged"]))
    watermark = draw(st.none() | _padded(_b64()))
    if kind == "Status":
        return Event(kind, watermark, None, ())
    ids = draw(_valid_ids(kind))
    unread = None
    if kind == "Modified" and ids[0].tag == "FolderId":
        unread = draw(st.none() | _padded(st.integers(0, 2**31 - 1).map(str)))
    return Event(kind, watermark, draw(_padded(valid_time())), ids, unread)


valid_requests = st.builds(
    Request,
    _padded(_b64()),
    st.none() | _padded(_b64()),
    st.none() | _padded(st.sampled_from(["true", "false", "1", "0"])),
    st.lists(valid_event(), min_size=1, max_size=3).map(tuple),
)

HOSTILE_TIMES = [
    "9999-12-31T23:30:00-01:00", "0001-01-01T00:00:00+14:00", "0001-01-02T00:00:00Z",
    "0001-01-01T23:59:59Z", "9999-12-30T23:59:59.9999999Z", "9999-12-31T00:00:00Z",
    "9999-12-30T24:00:00Z", "9999-12-29T24:00:00Z", "2026-11-24 10:00Z", "2026-11-24t10:00:00Z",
    "2026-W48-2T10:00:00Z", "2026-11-24T10:00:00", "2026-02-29T00:00:00Z", "2024-02-29T00:00:00Z",
    "2026-11-24T10:00:00+14:01", "2026-11-24T10:00:00+15:00", "0000-06-01T00:00:00Z",
    "-0001-06-01T00:00:00Z", "10000-01-01T00:00:00+14:00", "02026-11-24T10:00:00Z",
    "2026-11-24T24:00:00.000Z", "2026-11-24T24:00:01Z", "2026-11-24T10:00:00.Z",
    "\u0662\u0660\u0662\u0666-11-24T10:00:00Z", "2026-11-24T10:00:00." + "1" * 40 + "Z", "",
]  # fmt: skip
HOSTILE_INTS = [
    "2147483647", "2147483648", "-2147483648", "-2147483649", str(2**63), str(2**64), "+7",
    "007", "\u0665", "5_0", "1e3", "0x10", "+-1", "5.0", "", " ", "9" * 50,
]  # fmt: skip
HOSTILE_BOOLEANS = ["True", "TRUE", "yes", "", "2", "true\u00a0", "t"]


@st.composite
def _flipped(draw: st.DrawFn, valid: st.SearchStrategy[str]) -> str:
    """A valid value with one character replaced by, or one inserted from, the hostile ones."""
    value = draw(valid)
    at = draw(st.integers(0, len(value)))
    char = draw(st.sampled_from(_HOSTILE_CHARS) | st.characters(codec="utf-8"))
    end = at + draw(st.integers(0, 1))
    return value[:at] + char + value[end:]


def _hostile_text(valid: st.SearchStrategy[str]) -> st.SearchStrategy[Text]:
    return st.one_of(
        _flipped(valid).map(Text),
        st.text(alphabet=st.sampled_from(_HOSTILE_CHARS), max_size=10).map(Text),
        st.integers(505, 520).map(lambda n: Text("W" * n)),
        _padded(valid).map(lambda t: replace(t, mixed=True)),
    )


_HOSTILE_ID = st.one_of(
    _flipped(_b64()),
    st.text(alphabet=st.sampled_from(_HOSTILE_CHARS), max_size=10),
    st.integers(505, 520).map(lambda n: "I" * n),
)


@st.composite
def _mutate_event(draw: st.DrawFn, event: Event) -> Event:
    what = draw(st.sampled_from(["watermark", "timestamp", "unread", "id", "key", "twice"]))
    if what == "watermark":
        return replace(event, watermark=draw(_hostile_text(_b64())))
    if what == "timestamp":
        times = st.sampled_from(HOSTILE_TIMES).map(Text) | _hostile_text(valid_time())
        return replace(event, timestamp=draw(st.none() | times))
    if what == "unread" and event.kind == "Modified":
        ints = st.sampled_from(HOSTILE_INTS) | st.integers(-(2**70), 2**70).map(str)
        return replace(event, unread=draw(ints.map(Text) | _hostile_text(st.just("3"))))
    if what in ("id", "key") and event.ids:
        index = draw(st.integers(0, len(event.ids) - 1))
        target = event.ids[index]
        value = draw(_HOSTILE_ID)
        changed = replace(target, id=value) if what == "id" else replace(target, change_key=value)
        return replace(event, ids=(*event.ids[:index], changed, *event.ids[index + 1 :]))
    if what == "twice":
        present = [
            n for n, v in (("Watermark", event.watermark), ("TimeStamp", event.timestamp)) if v
        ]
        present += ["ItemId"] if event.ids else []
        if present:
            return replace(event, twice=draw(st.sampled_from(present)))
    return event


@st.composite
def mutated_requests(draw: st.DrawFn) -> Request:
    """A valid request with zero to three of its values replaced by hostile ones."""
    request = draw(valid_requests)
    for _ in range(draw(st.integers(0, 3))):
        where = draw(st.sampled_from(["subscription", "previous", "more", "event"]))
        if where == "subscription":
            request = replace(request, subscription=draw(_hostile_text(_b64())))
        elif where == "previous":
            request = replace(request, previous=draw(_hostile_text(_b64())))
        elif where == "more":
            more = st.sampled_from(HOSTILE_BOOLEANS).map(Text) | _hostile_text(st.just("true"))
            request = replace(request, more=draw(more))
        else:
            index = draw(st.integers(0, len(request.events) - 1))
            events = list(request.events)
            events[index] = draw(_mutate_event(events[index]))
            request = replace(request, events=tuple(events))
    return request
