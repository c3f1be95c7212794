"""Room discovery over EWS: EwsClient.rooms (GetRoomLists, GetRooms) and PUSHSYNC_ROOM_LISTS,
against the simulator over real HTTP, and `pushsync subscriptions sync` subscribing a list."""

from __future__ import annotations

import asyncio
import os

import pytest
from exchangelib.errors import ErrorNameResolutionNoResults

from pushsync.errors import ExchangeError
from pushsync.ews.client import EwsClient
from pushsync.processes.sync import build_ews_client, room_plan
from pushsync.settings import Settings
from pushsync.simulator import SimulatorThread, generated_rooms
from pushsync.simulator.config import ALL_ROOMS, RoomList
from tests.acceptance.conftest import CALLBACK_TOKEN, run_pushsync
from tests.acceptance.simulated_exchange import running

ROOMS = generated_rooms(5)
BUILDING_A = RoomList(
    "building-a@contoso.example",
    "Building A",
    (ROOMS[0].email, ROOMS[3].email.upper()),  # addresses compare case-insensitively
)
EVERY_ROOM = sorted(room.email for room in ROOMS)


def client(thread: SimulatorThread) -> EwsClient:
    return build_ews_client(settings(thread))


def settings(thread: SimulatorThread, **values: object) -> Settings:
    sim = thread.sim
    return Settings(
        ews_url=sim.ews_url,
        ews_auth="basic",
        ews_username=sim.config.username,
        ews_password=sim.config.password,
        **values,
    )


async def _rooms(thread: SimulatorThread, room_list: str | None = None) -> list[str]:
    ews = client(thread)
    try:
        return await ews.rooms(room_list)
    finally:
        ews.close()


def test_rooms_of_one_list_and_of_every_list() -> None:
    with running(rooms=ROOMS, room_lists=(ALL_ROOMS, BUILDING_A)) as thread:
        assert asyncio.run(_rooms(thread, BUILDING_A.email)) == [ROOMS[0].email, ROOMS[3].email]
        assert asyncio.run(_rooms(thread, ALL_ROOMS.email)) == EVERY_ROOM
        assert asyncio.run(_rooms(thread)) == EVERY_ROOM  # GetRoomLists, then GetRooms each
        assert thread.sim.exchange.calls["GetRoomLists"] == 1
        assert thread.sim.exchange.calls["GetRooms"] == 4


def test_an_address_that_is_no_room_list_is_an_error_not_an_empty_list() -> None:
    with running(rooms=ROOMS) as thread, pytest.raises(ExchangeError) as refused:
        asyncio.run(_rooms(thread, "no-such-list@contoso.example"))
    assert isinstance(refused.value.__cause__, ErrorNameResolutionNoResults)


def test_an_organisation_without_room_lists_has_no_rooms_to_discover() -> None:
    with running(rooms=ROOMS, room_lists=()) as thread:
        assert asyncio.run(_rooms(thread)) == []


def test_room_lists_setting_expands_into_the_plan_with_its_protocol() -> None:
    with running(rooms=ROOMS, room_lists=(ALL_ROOMS, BUILDING_A)) as thread:
        ews = client(thread)
        try:
            over_graph = asyncio.run(
                room_plan(
                    settings(
                        thread,
                        room_lists=[BUILDING_A.email],
                        protocol="graph",
                        ews_rooms=[ROOMS[3].email],
                        rooms=[ROOMS[1].email],
                    ),
                    ews,
                )
            )
        finally:
            ews.close()
    assert over_graph.graph == sorted([ROOMS[0].email, ROOMS[1].email])
    assert over_graph.ews == [ROOMS[3].email]  # ews_rooms overrides the list's protocol


def test_subscriptions_sync_subscribes_every_room_of_the_list(server) -> None:
    with running(rooms=ROOMS, room_lists=(ALL_ROOMS, BUILDING_A)) as thread:
        sim = thread.sim
        env = {
            **os.environ,
            "PUSHSYNC_DATABASE_URL": server.database_url,
            "PUSHSYNC_PUBLIC_URL": server.url,
            "PUSHSYNC_CALLBACK_TOKEN": CALLBACK_TOKEN,
            "PUSHSYNC_EWS_URL": sim.ews_url,
            "PUSHSYNC_EWS_AUTH": "basic",
            "PUSHSYNC_EWS_USERNAME": sim.config.username,
            "PUSHSYNC_EWS_PASSWORD": sim.config.password,
            "PUSHSYNC_ROOM_LISTS": BUILDING_A.email,
        }
        env.pop("PUSHSYNC_ROOMS", None)
        output = run_pushsync("subscriptions", "sync", env=env)
        assert "subscribed 2, failed 0" in output
        subscribed = {r["mailbox"] for r in server.rows("SELECT mailbox FROM subscription")}
        assert subscribed == {ROOMS[0].email, ROOMS[3].email}
        assert {s.mailbox for s in thread.call(sim.push.active)} == subscribed
