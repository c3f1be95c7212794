"""`/rooms` a page at a time: which rooms a request asks for (`?state=`, `?limit=`, `?after=`)
and the JSON answer, with the link to the next page.

The rooms come in the order the database lists them (`room_status.room_verdicts`): the worst
kind of problem first, then by mailbox. A page ends where `limit` says; `next` is the path of
the page after it (null on the last), its `after` an opaque cursor (the last room's rank and
mailbox). A room whose verdict changes between two pages may be listed twice or skipped: the
totals, counted at each request, are the figures to trust.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from pushsync.admin.room_status import STATES, Cursor, Overview
from pushsync.admin.status_page import rooms_path
from pushsync.errors import PushsyncError

# A fleet up to this many rooms gets every room in one answer, as before pages existed.
DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000


class BadListing(PushsyncError):
    """A `/rooms` query the listing cannot answer (an unknown state, a bad limit or cursor)."""

    status = 400


@dataclass(frozen=True)
class Listing:
    state: str | None = None
    limit: int = DEFAULT_LIMIT
    after: Cursor | None = None

    @classmethod
    def from_query(cls, query: bytes) -> Listing:
        try:
            asked = parse_qs(query.decode(), strict_parsing=False)
        except UnicodeDecodeError as exc:
            raise BadListing(f"the query is not UTF-8: {exc}") from exc
        state = _one(asked, "state")
        if state is not None and state not in STATES:
            raise BadListing(f"unknown state {state!r}: one of {', '.join(STATES)}")
        limit = _limit(_one(asked, "limit"))
        given = _one(asked, "after")
        return cls(state, limit, _cursor(given) if given else None)

    def next_path(self, cursor: Cursor | None) -> str | None:
        if cursor is None:
            return None
        return rooms_path(self.state, limit=self.limit, after=f"{cursor[0]}:{cursor[1]}")


def listing_json(
    found: Overview, listing: Listing, discovery: list[dict[str, Any]]
) -> dict[str, Any]:
    """The /rooms answer: the totals over every room, then the page's rooms."""
    totals = found.totals
    return {
        "rooms": totals.rooms,
        "in_sync": totals.in_sync,
        "by_status": {kind or "in sync": n for kind, n in totals.by_kind.items()},
        "state": listing.state,
        "limit": listing.limit,
        "next": listing.next_path(found.next),
        "statuses": [s.as_json() for s in found.rooms],
        "processes": [p.as_json() for p in found.fleet.processes],
        "processes_down": found.fleet.problems(),
        "room_discovery": discovery,
    }


def _one(asked: dict[str, list[str]], name: str) -> str | None:
    values = asked.get(name)
    return values[-1] if values else None


def _limit(given: str | None) -> int:
    if given is None:
        return DEFAULT_LIMIT
    if not given.isdigit() or not 1 <= int(given) <= MAX_LIMIT:
        raise BadListing(f"limit must be a whole number from 1 to {MAX_LIMIT}, not {given!r}")
    return int(given)


def _cursor(given: str) -> Cursor:
    rank, _, mailbox = given.partition(":")
    if not rank.isdigit() or not mailbox:
        raise BadListing(f"after {given!r} is not a cursor from a `next` link")
    return int(rank), mailbox
