"""The subscription manager keeps every room's push subscription alive (issue 5).

Simulator (Exchange) -> a real `pushsync serve` process -> manager and worker in-process
(SyncLoop). One Exchange minute lasts one real second, so StatusFrequency 3 means a StatusEvent
every 3 s and a dead subscription noticed after 6 s of silence.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta

import pytest

from pushsync.simulator import generated_rooms
from tests.acceptance.conftest import run_pushsync
from tests.acceptance.manager_checks import (
    active_ids,
    deliveries,
    failed,
    meeting,
    moment,
    room_row,
    simulator_states,
    subscription_rows,
    tomorrow_at_nine,
)
from tests.acceptance.simulated_exchange import running, wait_for
from tests.acceptance.sync_loop import SyncLoop, sync_settings
from tests.acceptance.test_sync_end_to_end import converge

SCALE = 60.0  # one Exchange minute per real second
MINUTE = timedelta(seconds=60 / SCALE)


def test_an_outage_shorter_than_status_frequency_loses_nothing(server_factory) -> None:
    """Exchange's retries (30 s, then doubling) deliver what was booked while we were down."""
    server = server_factory()
    rooms = generated_rooms(2)
    r1, r2 = (room.email for room in rooms)
    with running(rooms=rooms, scale=SCALE) as thread:
        sim = thread.sim
        base = tomorrow_at_nine(thread)
        thread.call(sim.exchange.book, meeting("BEFORE", base), [r1])
        # StatusFrequency 15: Exchange retries for 15 minutes (15 s here), the manager waits 30.
        settings = sync_settings(server, thread, status_frequency_minutes=15)
        with SyncLoop(settings, sim.clock.now, MINUTE) as loop:
            converge(thread, server, loop)
            before = active_ids(server)
            assert set(before) == {r1, r2}
            assert loop.worker is not None
            resyncs = loop.worker.stats.resyncs

            server.stop()
            thread.call(sim.exchange.book, meeting("DURING-1", base + timedelta(hours=2)), [r1])
            thread.call(sim.exchange.book, meeting("DURING-2", base + timedelta(hours=3)), [r2])
            thread.call(sim.exchange.cancel, "BEFORE")
            for sid in before.values():  # Exchange tried and failed for both rooms
                wait_for(lambda sid=sid: any(failed(d) for d in deliveries(thread, sid)))
            server.start()  # the next retry (1.5 or 3.5 s after the first failure) gets through
            converge(thread, server, loop)

            assert active_ids(server) == before  # the same subscriptions, none replaced
            assert all(row["state"] == "active" for row in subscription_rows(server).values())
            assert simulator_states(thread) == {sid: "active" for sid in before.values()}
            for sid in before.values():
                sent = deliveries(thread, sid)
                first_failure = next(i for i, d in enumerate(sent) if failed(d))
                # the retry carried the events booked during the outage
                assert any(d.status == "OK" and d.events for d in sent[first_failure:])
            # nothing was lost, so nothing needed a full resync: the retries delivered it all
            assert loop.worker.stats.resyncs == resyncs
        assert loop.failure is None


def test_a_longer_outage_gets_new_subscriptions_and_a_resync(server_factory, caplog) -> None:
    """Exchange gives up after StatusFrequency; the manager notices within 2 x StatusFrequency."""
    caplog.set_level(logging.INFO, logger="pushsync")
    server = server_factory()
    rooms = generated_rooms(2)
    r1, r2 = (room.email for room in rooms)
    frequency = 3
    with running(rooms=rooms, scale=SCALE) as thread:
        sim = thread.sim
        base = tomorrow_at_nine(thread)
        thread.call(sim.exchange.book, meeting("BEFORE", base), [r1, r2])
        settings = sync_settings(server, thread, status_frequency_minutes=frequency)
        with SyncLoop(settings, sim.clock.now, MINUTE) as loop:
            converge(thread, server, loop)
            before = active_ids(server)

            server.stop()
            thread.call(sim.exchange.book, meeting("DURING-1", base + timedelta(hours=2)), [r1])
            thread.call(sim.exchange.book, meeting("DURING-2", base + timedelta(hours=3)), [r2])
            thread.call(sim.exchange.delete, "BEFORE")
            # Exchange retries for StatusFrequency minutes, then drops the subscription.
            wait_for(
                lambda: all(simulator_states(thread)[sid] == "dead" for sid in before.values())
            )
            server.start()

            # Nothing is heard from a dead subscription: within 2 x StatusFrequency of the last
            # notification (earlier than Exchange gave up) the manager replaces it.
            deadline = (2 * frequency * MINUTE).total_seconds() + 5
            wait_for(lambda: set(active_ids(server).values()).isdisjoint(before.values()), deadline)
            converge(thread, server, loop)

            after = active_ids(server)
            rows = subscription_rows(server)
            states = simulator_states(thread)
            for mailbox, old in before.items():
                assert rows[old]["state"] == "retired"
                assert rows[old]["replaced_by"] == after[mailbox]
                assert rows[old]["last_error"].startswith("silent since")
                assert states[old] == "dead" and states[after[mailbox]] == "active"
                # the room was resynced after its subscription was replaced
                # (the replayed events may converge first: wait for the resync itself)
                room = wait_for(lambda m=mailbox: _resynced(server, m))
                assert moment(room["last_synced_at"]) >= moment(rows[old]["retired_at"])
                assert _logged(caplog, "replacing subscription", mailbox) < _logged(
                    caplog,
                    "room resynced",
                    mailbox,
                    after=_logged(caplog, "replacing subscription", mailbox),
                )
        assert loop.failure is None


@pytest.mark.parametrize("exchange_goes_on", [False, True], ids=["ended", "still-posting"])
def test_an_error_notification_gets_a_new_subscription(server_factory, exchange_goes_on) -> None:
    """ErrorReadEventsFailed: the room is resubscribed; the old id, if Exchange posts for it
    again, is answered Unsubscribe and Exchange ends it."""
    server = server_factory()
    rooms = generated_rooms(2)
    r1, r2 = (room.email for room in rooms)
    with running(rooms=rooms, scale=SCALE) as thread:
        sim = thread.sim
        assert sim.push is not None
        base = tomorrow_at_nine(thread)
        thread.call(sim.exchange.book, meeting("BEFORE", base), [r1, r2])
        # StatusFrequency 3: the old subscription's next StatusEvent comes 3 s after the error
        settings = sync_settings(server, thread, status_frequency_minutes=3)
        with SyncLoop(settings, sim.clock.now, MINUTE) as loop:
            converge(thread, server, loop)
            before = active_ids(server)
            old = before[r1]

            thread.call(sim.push.fail, old, "ErrorReadEventsFailed", then_end=not exchange_goes_on)
            wait_for(lambda: active_ids(server).get(r1) not in (None, old))
            new = active_ids(server)[r1]
            assert active_ids(server)[r2] == before[r2]  # the other room is untouched
            row = subscription_rows(server)[old]
            assert row["state"] == "retired" and row["replaced_by"] == new
            assert "ErrorReadEventsFailed" in row["last_error"]

            if exchange_goes_on:
                wait_for(lambda: simulator_states(thread)[old] == "unsubscribed")
                assert deliveries(thread, old)[-1].status == "Unsubscribe"
            else:
                assert simulator_states(thread)[old] == "failed"
                assert all(d.status != "Unsubscribe" for d in deliveries(thread, old))
            assert simulator_states(thread)[new] == "active"

            # bookings after the switch arrive through the new subscription
            thread.call(sim.exchange.book, meeting("AFTER", base + timedelta(hours=4)), [r1])
            converge(thread, server, loop)
            assert any(d.events for d in deliveries(thread, new) if d.status == "OK")
        assert loop.failure is None


def _resynced(server, mailbox: str):
    room = room_row(server, mailbox)
    return None if room["needs_resync"] else room


def _logged(caplog, message: str, mailbox: str, after: int = -1) -> int:
    """Index of the first record with `message` about `mailbox` after index `after`, waiting a
    little for it: the worker logs "room resynced" once the resync returns, a moment after the
    room's row says so (it stores the room's sync state in between)."""

    def find() -> int | None:
        for index, record in enumerate(list(caplog.records)):
            if (
                index > after
                and record.getMessage() == message
                and record.__dict__.get("mailbox") == mailbox
            ):
                return index + 1  # truthy for wait_for, even for the first record
        return None

    try:
        return wait_for(find, timeout=10) - 1
    except AssertionError:
        raise AssertionError(
            f"no log record {message!r} for {mailbox} after record {after}"
        ) from None


def test_a_subscription_retired_by_hand_is_replaced_and_its_room_resynced(server_factory) -> None:
    """`pushsync subscriptions retire ID` (token rotation, recovery): the running manager
    subscribes the room again and resyncs it; Exchange's next post for the old id is answered
    Unsubscribe."""
    server = server_factory()
    rooms = generated_rooms(1)
    room = rooms[0].email
    with running(rooms=rooms, scale=SCALE) as thread:
        sim = thread.sim
        thread.call(sim.exchange.book, meeting("BEFORE", tomorrow_at_nine(thread)), [room])
        settings = sync_settings(server, thread, status_frequency_minutes=3)
        with SyncLoop(settings, sim.clock.now, MINUTE) as loop:
            converge(thread, server, loop)
            old = active_ids(server)[room]
            assert loop.worker is not None
            resyncs = loop.worker.stats.resyncs
            env = {**os.environ, "PUSHSYNC_DATABASE_URL": server.database_url}
            run_pushsync("subscriptions", "retire", old, env=env)

            new = wait_for(lambda: active_ids(server).get(room))
            assert new != old
            wait_for(lambda: loop.worker is not None and loop.worker.stats.resyncs > resyncs)
            wait_for(lambda: simulator_states(thread)[old] == "unsubscribed")
            assert simulator_states(thread)[new] == "active"
        assert loop.failure is None
