"""Which room stopped syncing, and why: `room_statuses` over real rows, on both engines."""

from __future__ import annotations

from datetime import timedelta

from pushsync.admin.room_status import PROBLEM_KINDS, room_statuses
from pushsync.model.reservation import Plan
from pushsync.store import Connector
from pushsync.store.notification_queue import NotificationQueue, QueuePolicy
from pushsync.store.reservation_book import Reservations
from pushsync.store.subscriptions import Subscriptions
from tests.integration.helpers import T0, Clock, add_rows, event

NOW = T0 + timedelta(minutes=2)


def mailbox(name: str) -> str:
    return f"{name}@contoso.example"


async def subscribe(subscriptions: Subscriptions, name: str, *, heard: bool = True) -> None:
    await subscriptions.record(
        mailbox(name), f"SUB-{name}", protocol="ews", watermark="W0", status_frequency=15, now=T0
    )
    if heard:
        await subscriptions.heard(f"SUB-{name}", NOW, "W1")


async def synced(connector: Connector, name: str) -> None:
    await Reservations(connector).reconcile_room(
        mailbox(name), lambda _stored: Plan(), T0 - timedelta(hours=1), resynced=0
    )


async def test_each_room_gets_its_first_problem_and_rooms_in_sync_come_last(
    connector: Connector,
) -> None:
    subscriptions = Subscriptions(connector)
    names = ["fine", "unsubscribed", "broken", "silent", "failing", "behind", "paused", "new"]
    await subscriptions.ensure_rooms([mailbox(n) for n in names], "ews", T0)
    for name in names:
        if name != "new":
            await synced(connector, name)
        if name != "unsubscribed":
            await subscribe(subscriptions, name, heard=name != "silent")
    await subscriptions.room_error(
        mailbox("unsubscribed"), "subscribe: ErrorNonExistentMailbox", T0
    )
    await subscriptions.mark_broken("SUB-broken", "ErrorReadEventsFailed")
    await subscriptions.pause(mailbox("paused"), NOW + timedelta(seconds=30))

    await add_rows(connector, [event(1, "SUB-failing"), event(2, "SUB-behind")])
    queue = NotificationQueue(connector, policy=QueuePolicy(max_attempts=1))
    for claimed in await queue.claim(10):
        if claimed.subscription_id == "SUB-failing":
            await queue.fail(claimed, "ErrorItemCorrupt")
        else:
            await queue.release([claimed.id], T0)

    statuses = await room_statuses(connector, NOW)
    late = await room_statuses(connector, T0 + timedelta(minutes=31))

    kinds = {s.mailbox.split("@")[0]: s.kind for s in statuses}
    assert kinds == {
        "fine": None,
        "unsubscribed": "no subscription",
        "broken": "subscription broken",
        "silent": None,  # 2 minutes without a heartbeat is normal
        "failing": "notifications failed",
        "behind": None,  # its row waits 2 minutes: not yet behind
        "paused": "throttled",
        "new": "resync waiting",
    }
    assert set(kinds.values()) - {None} <= set(PROBLEM_KINDS)  # each has its metric label
    by_name = {s.mailbox.split("@")[0]: s for s in statuses}
    assert by_name["unsubscribed"].problem == "no subscription: subscribe: ErrorNonExistentMailbox"
    assert by_name["broken"].problem == "subscription broken: ErrorReadEventsFailed"
    assert by_name["failing"].failed == 1 and "1 notifications failed" in str(
        by_name["failing"].problem
    )
    assert by_name["behind"].pending == 1 and by_name["behind"].oldest_pending == T0
    assert [s.problem is None for s in statuses] == sorted(s.problem is None for s in statuses)

    late_kinds = {s.mailbox.split("@")[0]: s.kind for s in late}
    assert late_kinds["silent"] == "silent"  # 31 minutes since Subscribe > 2 x StatusFrequency
    assert late_kinds["behind"] == "behind"
    assert late_kinds["paused"] is None  # the back-off is over


async def test_a_resync_after_failed_rows_heals_them(connector: Connector) -> None:
    subscriptions = Subscriptions(connector)
    await subscriptions.ensure_rooms([mailbox("failing")], "ews", T0)
    await subscribe(subscriptions, "failing")
    await add_rows(connector, [event(1, "SUB-failing")])
    clock = Clock(T0)
    queue = NotificationQueue(connector, policy=QueuePolicy(max_attempts=1), clock=clock)
    (claimed,) = await queue.claim(1)
    await queue.fail(claimed, "ErrorItemCorrupt")
    assert (await room_statuses(connector, NOW))[0].kind == "notifications failed"

    generation = await subscriptions.resync_generation(mailbox("failing"))  # read once subscribed
    await Reservations(connector).reconcile_room(
        mailbox("failing"), lambda _stored: Plan(), T0 + timedelta(minutes=1), resynced=generation
    )

    (status,) = await room_statuses(connector, NOW)
    assert status.failed == 0 and status.problem is None


async def test_an_old_error_stops_counting_and_a_throttled_room_is_not_called_behind(
    connector: Connector,
) -> None:
    subscriptions = Subscriptions(connector)
    await subscriptions.ensure_rooms([mailbox("flaky"), mailbox("paused")], "ews", T0)
    for name in ("flaky", "paused"):
        await synced(connector, name)
        await subscribe(subscriptions, name)
    await subscriptions.room_error(mailbox("flaky"), "ErrorServerBusy once", T0)
    await subscriptions.pause(mailbox("paused"), T0 + timedelta(hours=1))
    await add_rows(connector, [event(1, "SUB-paused")])
    soon, later = T0 + timedelta(minutes=10), T0 + timedelta(minutes=61)

    kinds = {s.mailbox: s.kind for s in await room_statuses(connector, soon)}
    assert kinds == {mailbox("flaky"): "error", mailbox("paused"): "throttled"}
    await subscriptions.heard("SUB-flaky", later, "W2")  # still hearing from Exchange
    later_kinds = {s.mailbox: s.kind for s in await room_statuses(connector, later)}
    assert later_kinds[mailbox("flaky")] is None  # an hour-old error, nothing since


async def test_a_room_with_two_live_subscriptions_is_listed_once(connector: Connector) -> None:
    subscriptions = Subscriptions(connector)
    await subscriptions.ensure_rooms([mailbox("moving")], "graph", T0)
    await subscribe(subscriptions, "moving")  # its old EWS one
    await subscriptions.record(
        mailbox("moving"),
        "SUB-graph",
        protocol="graph",
        watermark=None,
        status_frequency=None,
        now=T0,
    )
    (status,) = await room_statuses(connector, NOW)
    assert status.subscription_id == "SUB-graph"
