"""SyncFolderItems on a room calendar: exchangelib, unmodified, against the simulator over HTTP."""

from __future__ import annotations

import pytest
from exchangelib.errors import ErrorInvalidSyncStateData, ErrorServerBusy
from exchangelib.items import ID_ONLY
from exchangelib.services import SyncFolderItems

from pushsync.simulator import SimulatorThread
from tests.acceptance.simulated_exchange import account, at, meeting, running

ROOM = "room-001@contoso.example"
OTHER = "room-002@contoso.example"


def sync(thread: SimulatorThread, state: str | None, room: str = ROOM, max_changes: int = 100):
    """All pages from `state`, as exchangelib's own loop reads them: ([(change, id)], state)."""
    calendar = account(thread, room).calendar
    changes = [
        (change, item.id)
        for change, item in calendar.sync_items(
            sync_state=state, only_fields=[], max_changes_returned=max_changes
        )
    ]
    return changes, calendar.item_sync_state


def ids_of(thread: SimulatorThread, *uids: str) -> list[str]:
    calendar = thread.sim.exchange.calendar(ROOM)
    return [calendar.by_uid(uid).item_id for uid in uids]


def book(thread: SimulatorThread, *uids: str, room: str = ROOM) -> None:
    for n, uid in enumerate(uids):
        thread.call(thread.sim.exchange.book, meeting(uid, at(3 + n, 9)), [room])
    thread.call(thread.sim.exchange.settle)


def test_a_first_sync_lists_every_item_as_a_create_in_pages() -> None:
    with running() as thread:
        book(thread, "A", "B", "C", "D", "E")
        book(thread, "ELSEWHERE", room=OTHER)
        before = thread.sim.exchange.calls["SyncFolderItems"]

        changes, state = sync(thread, None, max_changes=2)

        assert sorted(changes) == sorted(("create", i) for i in ids_of(thread, *"ABCDE"))
        assert thread.sim.exchange.calls["SyncFolderItems"] - before == 3  # 2 + 2 + 1
        assert state and sync(thread, state) == ([], state)  # nothing changed since


def test_changes_since_a_state_one_per_item() -> None:
    with running() as thread:
        book(thread, "KEEP", "EDIT", "SOFT", "HARD")
        _, state = sync(thread, None)
        soft, hard = ids_of(thread, "SOFT", "HARD")
        exchange = thread.sim.exchange
        thread.call(exchange.update, meeting("EDIT", at(12, 10)))
        thread.call(exchange.delete, "SOFT")  # a move to Deleted Items
        thread.call(exchange.delete, "HARD", hard=True)
        book(thread, "NEW")
        book(thread, "BRIEF")
        brief = ids_of(thread, "BRIEF")[0]
        thread.call(exchange.delete, "BRIEF")  # created and gone within the same span
        thread.call(exchange.settle)

        changes, later = sync(thread, state)

        [edit, new] = ids_of(thread, "EDIT", "NEW")
        assert sorted(changes) == sorted(
            [
                ("update", edit),
                ("delete", soft),
                ("delete", hard),
                ("create", new),
                ("delete", brief),
            ]
        )
        assert later != state


def test_more_changes_than_asked_for_come_in_pages_marked_not_last() -> None:
    with running() as thread:
        _, state = sync(thread, None)
        book(thread, "A", "B", "C")
        service = SyncFolderItems(account=account(thread, ROOM))
        folder = account(thread, ROOM).calendar
        seen = []
        while True:
            page = list(
                service.call(
                    folder=folder,
                    shape=ID_ONLY,
                    additional_fields=set(),
                    sync_state=state,
                    ignore=None,
                    max_changes_returned=2,
                    sync_scope=None,
                )
            )
            seen += [item.id for _, item in page]
            state = service.sync_state
            if service.includes_last_item_in_range:
                break
            assert len(page) == 2
        assert sorted(set(seen)) == sorted(ids_of(thread, "A", "B", "C"))


@pytest.mark.parametrize("kind", ["expired", "garbled", "another mailbox's"])
def test_a_state_exchange_does_not_know_is_invalid_sync_state_data(kind: str) -> None:
    with running() as thread:
        book(thread, "A")
        _, state = sync(thread, None)
        if kind == "expired":
            thread.call(thread.sim.exchange.expire_sync_states, ROOM)
        elif kind == "garbled":
            state = "bm90IGEgc3luYyBzdGF0ZQ=="
        else:
            _, state = sync(thread, None, room=OTHER)

        with pytest.raises(ErrorInvalidSyncStateData):
            sync(thread, state)


def test_sync_folder_items_is_throttled_like_the_other_operations() -> None:
    with running(busy_back_off_ms=1500) as thread:
        thread.call(thread.sim.exchange.refuse_next, "SyncFolderItems")
        with pytest.raises(ErrorServerBusy) as refused:
            sync(thread, None)
        assert refused.value.back_off == 1.5
