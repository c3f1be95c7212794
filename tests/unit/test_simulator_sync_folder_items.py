"""The simulator's SyncFolderItems as plain values: pages, merged changes, states that expire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pushsync.simulator import Meeting, Person, SimClock, SimulatorConfig, generated_rooms
from pushsync.simulator.ews.mailbox import OperationError
from pushsync.simulator.ews.sync_folder_items import Page, changes
from pushsync.simulator.exchange import Exchange

ROOMS = generated_rooms(2)
ROOM, OTHER = ROOMS[0].email, ROOMS[1].email
ADA = Person("Ada Lovelace", "ada@contoso.example")


def organisation() -> Exchange:
    return Exchange(SimulatorConfig(rooms=ROOMS), SimClock(scale=1.0))


def book(exchange: Exchange, uid: str, day: int = 3, room: str = ROOM) -> str:
    start = datetime(2026, 3, day, 9, tzinfo=UTC)
    exchange.book(Meeting(uid, ADA, "Planning", start, start + timedelta(hours=1), "UTC"), [room])
    exchange.settle()
    return item_id(exchange, uid)


def item_id(exchange: Exchange, uid: str) -> str:
    found = exchange.calendars[ROOM].by_uid(uid)
    assert found is not None
    return found.item_id


def everything(exchange: Exchange, state: str | None, limit: int = 512) -> tuple[list, str]:
    """Every page from `state`: (changes in order, the last state)."""
    found: list[tuple[str, str]] = []
    while True:
        page: Page = changes(exchange, exchange.calendars[ROOM], state, limit)
        found += page.changes
        state = page.state
        if page.last:
            return found, state


def test_the_first_sync_lists_the_items_by_id_and_ends_where_it_started() -> None:
    exchange = organisation()
    ids = sorted(book(exchange, uid, day) for day, uid in enumerate("ABC", start=3))

    first = changes(exchange, exchange.calendars[ROOM], None, 2)
    rest = changes(exchange, exchange.calendars[ROOM], first.state, 2)

    assert first.changes == [("Create", ids[0]), ("Create", ids[1])] and not first.last
    assert rest.changes == [("Create", ids[2])] and rest.last
    assert everything(exchange, rest.state)[0] == []


def test_a_change_during_the_listing_comes_again_after_it() -> None:
    exchange = organisation()
    book(exchange, "A")
    book(exchange, "B", 4)
    first = changes(exchange, exchange.calendars[ROOM], None, 1)
    late = book(exchange, "LATE", 5)

    _, listed = everything(exchange, first.state)  # may or may not hold it, by its id
    found, _ = everything(exchange, listed)

    assert ("Create", late) in found


def test_one_change_per_item_merged_over_its_events() -> None:
    exchange = organisation()
    _, state = everything(exchange, None)
    created_then_edited = book(exchange, "A")
    exchange.update(Meeting("A", ADA, "Moved", *_hour(5), "UTC"))
    gone = book(exchange, "B", 4)
    exchange.delete("B")

    found, _ = everything(exchange, state)

    assert found == [("Create", created_then_edited), ("Delete", gone)]


def test_pages_stop_at_the_limit_of_distinct_items() -> None:
    exchange = organisation()
    _, state = everything(exchange, None)
    ids = [book(exchange, uid, day) for day, uid in enumerate("ABCDE", start=3)]

    page = changes(exchange, exchange.calendars[ROOM], state, 2)
    found, _ = everything(exchange, state, limit=2)

    assert len(page.changes) == 2 and not page.last
    assert [i for _, i in found] == ids  # each item in exactly one page


@pytest.mark.parametrize("how", ["expired", "too old", "garbled", "another mailbox's"])
def test_a_state_that_is_not_good_here_is_invalid_sync_state_data(how: str) -> None:
    exchange = organisation()
    book(exchange, "A")
    _, state = everything(exchange, None)
    if how == "expired":
        exchange.expire_sync_states(ROOM)
    elif how == "too old":
        book(exchange, "B", 4)
        exchange.clock.advance(timedelta(days=31).total_seconds())
        book(exchange, "C", 5)  # the log is trimmed to its last 30 days
    elif how == "garbled":
        state = state[:-4]
    else:
        state = changes(exchange, exchange.calendars[OTHER], None, 10).state

    with pytest.raises(OperationError) as refused:
        changes(exchange, exchange.calendars[ROOM], state, 10)

    assert refused.value.code == "ErrorInvalidSyncStateData"


def _hour(day: int) -> tuple[datetime, datetime]:
    start = datetime(2026, 3, day, 9, tzinfo=UTC)
    return start, start + timedelta(hours=1)
