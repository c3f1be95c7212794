"""Retired Graph subscriptions are DELETEd at Graph: by the Graph manager's maintenance round
(whatever retired them), and at once by `pushsync subscriptions retire`.

Same rig as test_graph_sync: the simulator on the test's loop, a real `pushsync serve`.
"""

from __future__ import annotations

import asyncio
import os
import sys

from pushsync.simulator.graph.api import GRAPH_TOKEN
from pushsync.store.subscriptions import Subscriptions
from tests.acceptance.test_graph_sync import STATE, Rig, rig

__all__ = ["rig"]  # the fixture, shared with test_graph_sync


async def _subscribed(rig: Rig, *rooms: str) -> dict[str, str]:
    """Each room's subscription id, at Graph and in our table."""
    await rig.manager.subscribe_rooms(rooms)
    return {room: rig.sim.graph.webhooks.active(room)[0].id for room in rooms}


async def _move_to_ews(rig: Rig, room: str) -> None:
    """What the EWS manager does once a room moved to EWS has its EWS subscription."""
    await Subscriptions(rig.connector).retire_other_protocols(room, "ews", rig.sim.clock.now())


async def test_a_room_moved_to_ews_loses_its_graph_subscription_at_the_next_round(
    rig: Rig,
) -> None:
    moved, staying = rig.rooms[0], rig.rooms[1]
    ids = await _subscribed(rig, moved, staying)
    await _move_to_ews(rig, moved)
    assert rig.sim.graph.webhooks.active(moved)  # retired here, still posting there

    await rig.manager.maintain()

    assert rig.sim.graph.webhooks.active(moved) == []
    assert [s.id for s in rig.sim.graph.webhooks.active(staying)] == [ids[staying]]
    assert rig.sim.graph.calls["unsubscribe"] == 1
    await rig.manager.maintain()  # nothing left to delete: no further DELETE
    assert rig.sim.graph.calls["unsubscribe"] == 1


async def test_a_throttled_delete_is_tried_again_at_the_next_round(rig: Rig) -> None:
    room = rig.rooms[0]
    await _subscribed(rig, room)
    await _move_to_ews(rig, room)
    rig.sim.exchange.journal = []
    rig.sim.graph.throttle(room, 1)

    await rig.manager.maintain()  # 429: not waited out here, the round goes on

    assert len(rig.sim.graph.webhooks.active(room)) == 1
    await rig.manager.maintain()

    assert rig.sim.graph.webhooks.active(room) == []
    deletes = [r.busy for r in rig.sim.exchange.journal if r.operation == "graph.unsubscribe"]
    assert deletes == [True, False]


async def test_subscriptions_the_database_does_not_hold_as_retired_are_left_alone(
    rig: Rig,
) -> None:
    """One unknown to our table may be another manager's, not yet recorded."""
    room = rig.rooms[2]
    url = rig.server.url + "/graph/notifications"
    stranger = await rig.client.create_subscription(
        room,
        notification_url=url,
        lifecycle_url=url,
        client_state=STATE,
        expires_at=rig.sim.clock.now() + rig.manager._lifetime,
    )
    live = await _subscribed(rig, rig.rooms[0])

    assert await rig.manager.delete_retired() == 0

    assert [s.id for s in rig.sim.graph.webhooks.active(room)] == [stranger.subscription_id]
    assert [s.id for s in rig.sim.graph.webhooks.active(rig.rooms[0])] == [live[rig.rooms[0]]]
    assert rig.sim.graph.calls["unsubscribe"] == 0


async def test_a_recreated_subscription_leaves_nothing_behind_at_graph(rig: Rig) -> None:
    room = rig.rooms[0]
    old = (await _subscribed(rig, room))[room]
    rig.sim.graph.webhooks.lifecycle(old, "subscriptionRemoved")  # Graph drops it itself
    await _until(lambda: not rig.sim.graph.webhooks.subscriptions[old].active)
    await Subscriptions(rig.connector).mark_broken(old, "subscriptionRemoved")

    await rig.manager.maintain()

    [new] = rig.sim.graph.webhooks.active(room)
    assert new.id != old
    assert {s.id for s in rig.sim.graph.webhooks.active()} == {new.id}


async def test_a_recreate_whose_delete_is_throttled_adopts_what_graph_still_holds(
    rig: Rig,
) -> None:
    """Broken here, alive at Graph, and the DELETE refused: the create that follows meets a
    409 for that very subscription, which is then taken back rather than recorded twice."""
    room = rig.rooms[0]
    old = (await _subscribed(rig, room))[room]
    await Subscriptions(rig.connector).mark_broken(old, "subscriptionRemoved")
    rig.sim.graph.throttle(room, 1)

    outcome = await rig.manager.maintain()

    assert outcome.subscribed == [room] and not outcome.failed
    assert [s.id for s in rig.sim.graph.webhooks.active(room)] == [old]
    [row] = rig.subscriptions()
    assert (row["subscription_id"], row["state"]) == (old, "active")
    assert rig.room(room)["needs_resync"]


async def test_retire_by_hand_deletes_at_graph_at_once(rig: Rig) -> None:
    room = rig.rooms[0]
    subscription_id = (await _subscribed(rig, room))[room]

    output = await _cli(rig, "subscriptions", "retire", subscription_id)

    assert "deleted at Graph" in output
    assert rig.sim.graph.webhooks.active(room) == []
    [row] = rig.subscriptions()
    assert row["state"] == "retired"


async def test_retire_by_hand_without_graph_settings_leaves_the_delete_to_the_manager(
    rig: Rig,
) -> None:
    room = rig.rooms[0]
    subscription_id = (await _subscribed(rig, room))[room]

    output = await _cli(rig, "subscriptions", "retire", subscription_id, graph=False)

    assert "not deleted at Graph" in output
    assert len(rig.sim.graph.webhooks.active(room)) == 1
    await rig.manager.maintain()
    assert rig.sim.graph.webhooks.active(room) == []


async def _cli(rig: Rig, *args: str, graph: bool = True) -> str:
    env = {**os.environ, "PUSHSYNC_DATABASE_URL": rig.server.database_url, "COLUMNS": "200"}
    if graph:
        env |= {"PUSHSYNC_GRAPH_URL": rig.sim.graph_url, "PUSHSYNC_GRAPH_TOKEN": GRAPH_TOKEN}
    else:  # neither a token nor msal credentials
        for name in ("PUSHSYNC_GRAPH_TOKEN", "PUSHSYNC_TENANT_ID", "PUSHSYNC_CLIENT_SECRET"):
            env.pop(name, None)
    process = await asyncio.create_subprocess_exec(  # the simulator runs on this loop
        sys.executable,
        "-m",
        "pushsync",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, output.decode()
    return output.decode()


async def _until(condition, seconds: float = 10) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met before the deadline")


async def test_graph_is_listed_again_only_once_something_was_retired(rig: Rig) -> None:
    """The list holds every subscription of the app (50,000 at fleet size): a round in which
    nothing was retired since the last listing does not ask for it."""
    moved, staying = rig.rooms[0], rig.rooms[1]
    await _subscribed(rig, moved, staying)
    await rig.manager.maintain()  # the first round lists: it cannot know what came before
    listed = rig.sim.graph.calls["list"]
    await rig.manager.maintain()
    await rig.manager.maintain()
    assert rig.sim.graph.calls["list"] == listed

    await _move_to_ews(rig, moved)
    await rig.manager.maintain()

    assert rig.sim.graph.calls["list"] == listed + 1
    assert rig.sim.graph.webhooks.active(moved) == []
