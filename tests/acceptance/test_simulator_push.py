"""The simulator pushes to a real `pushsync serve` the way Exchange does: rows land, retries,
dead subscriptions, Unsubscribe and error notifications."""

from __future__ import annotations

import subprocess

from pushsync.simulator.push import State
from tests.acceptance.conftest import (
    CALLBACK_TOKEN,
    EWS_PATH,
    ServerProcess,
    free_port,
    pushsync_command,
)
from tests.acceptance.simulated_exchange import account, at, meeting, running, wait_for

ROOM = "room-001@contoso.example"


def callback(server: ServerProcess) -> str:
    # The token only authenticates if the simulator keeps the query string as given.
    return f"{server.url}{EWS_PATH}?Default&token={CALLBACK_TOKEN}"


def rows(server: ServerProcess, event_type: str | None = None) -> list:
    found = server.rows()
    return [r for r in found if event_type is None or r["event_type"] == event_type]


def test_booking_reaches_the_receiver_as_rows(server: ServerProcess) -> None:
    with running(scale=60) as thread:
        subscription_id, watermark = account(thread, ROOM).calendar.subscribe_to_push(
            callback(server), status_frequency=30
        )
        status = wait_for(lambda: rows(server, "Status"))
        assert status[0]["subscription_id"] == subscription_id
        assert status[0]["previous_watermark"] == watermark  # the first one comes at once

        thread.call(thread.sim.exchange.book, meeting("M1", at(3, 9)), [ROOM])
        item = thread.call(thread.sim.exchange.calendar(ROOM).by_uid, "M1")
        modified = wait_for(lambda: len(rows(server, "Modified")) >= 3 and rows(server))

    created = [r for r in modified if r["event_type"] == "Created"]
    assert [r["item_id"] for r in created] == [item.item_id]
    item_events = [r for r in modified if r["item_id"] == item.item_id]
    folder_events = [r for r in modified if r["folder_id"] and r["event_type"] == "Modified"]
    assert len(item_events) >= 2 and len(folder_events) >= 2  # item + folder per write
    assert {r["subscription_id"] for r in modified} == {subscription_id}


def test_events_are_batched_with_more_events_and_chained_watermarks(
    server: ServerProcess,
) -> None:
    with running(scale=60, max_events_per_notification=2) as thread:
        account(thread, ROOM).calendar.subscribe_to_push(callback(server), status_frequency=30)
        wait_for(lambda: rows(server, "Status"))

        def book_three() -> None:
            for n in range(3):
                thread.sim.exchange.book(meeting(f"B{n}", at(3, 9 + 2 * n)), [ROOM])

        thread.call(book_three)
        events = wait_for(lambda: (r := rows(server, None)) and len(r) >= 7 and r)

    changes = [r for r in events if r["event_type"] != "Status"][:6]
    assert [r["more_events"] for r in changes] == [1, 1, 1, 1, 0, 0]
    for earlier, later in zip(changes[1::2], changes[2::2], strict=False):
        assert later["previous_watermark"] == earlier["watermark"]


def test_a_short_outage_is_covered_by_retries(server: ServerProcess) -> None:
    with running(scale=60) as thread:
        calendar = account(thread, ROOM).calendar
        subscription_id, _ = calendar.subscribe_to_push(callback(server), status_frequency=30)
        wait_for(lambda: rows(server, "Status"))
        server.stop()

        thread.call(thread.sim.exchange.book, meeting("DURING", at(3, 9)), [ROOM])
        wait_for(lambda: any(d.status != "OK" for d in thread.sim.push.deliveries))
        server.start()
        wait_for(lambda: rows(server, "Created"))

        deliveries = [d for d in thread.sim.push.deliveries if d.subscription_id == subscription_id]
        failed = [d for d in deliveries if d.status != "OK"]
        assert failed and deliveries[-1].status == "OK"
        assert thread.sim.push.subscriptions[subscription_id].state is State.ACTIVE


def test_a_long_outage_kills_the_subscription_and_drops_its_events() -> None:
    nowhere = f"http://127.0.0.1:{free_port()}{EWS_PATH}"
    with running(scale=600) as thread:
        subscription_id, _ = account(thread, ROOM).calendar.subscribe_to_push(
            nowhere, status_frequency=1
        )
        subscription = thread.sim.push.subscriptions[subscription_id]
        wait_for(lambda: subscription.state is State.DEAD)

        attempts = [d for d in thread.sim.push.deliveries if d.subscription_id == subscription_id]
        assert len(attempts) == 2  # at once, then after 30 s; 60 s more would pass the minute
        assert all(d.status.startswith("transport error") for d in attempts)
        thread.call(thread.sim.exchange.book, meeting("LOST", at(3, 9)), [ROOM])
        assert not subscription.queue


def test_unsubscribe_answer_ends_the_subscription(server: ServerProcess) -> None:
    with running(scale=60) as thread:
        subscription_id, _ = account(thread, ROOM).calendar.subscribe_to_push(
            callback(server), status_frequency=30
        )
        wait_for(lambda: rows(server, "Status"))
        subprocess.run(
            pushsync_command(
                "subscriptions", "retire", subscription_id, "--database-url", server.database_url
            ),
            check=True,
            capture_output=True,
        )
        thread.call(thread.sim.exchange.book, meeting("AFTER", at(3, 9)), [ROOM])
        subscription = thread.sim.push.subscriptions[subscription_id]
        wait_for(lambda: subscription.state is State.UNSUBSCRIBED)
        assert thread.sim.push.deliveries[-1].status == "Unsubscribe"


def test_error_notification_on_demand(server: ServerProcess) -> None:
    with running(scale=60) as thread:
        subscription_id, _ = account(thread, ROOM).calendar.subscribe_to_push(
            callback(server), status_frequency=30
        )
        wait_for(lambda: rows(server, "Status"))
        thread.call(thread.sim.push.fail, subscription_id)
        [error] = wait_for(lambda: rows(server, "Error"))
        assert error["subscription_id"] == subscription_id
        assert error["response_code"] == "ErrorReadEventsFailed"
        assert thread.sim.push.subscriptions[subscription_id].state is State.FAILED
