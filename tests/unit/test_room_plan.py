"""Which rooms sync over EWS push and which over Graph, from the settings alone."""

from __future__ import annotations

import pytest

from pushsync.errors import ConfigError
from pushsync.processes.sync import build_clients, build_graph_manager, protocols_needed, room_plan
from pushsync.settings import Settings, load_settings


async def test_rooms_follow_protocol_and_the_per_room_lists_override_it() -> None:
    settings = Settings(
        rooms=["a@x.example", "B@x.example", "c@x.example"],
        protocol="graph",
        ews_rooms=["b@x.example"],
        graph_rooms=["d@x.example"],
    )

    plan = await room_plan(settings, None)

    assert plan.graph == ["a@x.example", "c@x.example", "d@x.example"]
    assert plan.ews == ["b@x.example"]
    assert plan.protocol_of("B@X.example") == "ews"
    assert plan.protocol_of("unknown@x.example") == "graph"  # the default
    assert plan.all == sorted([*plan.ews, *plan.graph])


async def test_by_default_every_room_is_ews_and_no_graph_client_is_built() -> None:
    settings = Settings(
        rooms=["a@x.example"],
        ews_url="https://ews.example/EWS/Exchange.asmx",
        ews_auth="basic",
        ews_username="svc@x.example",
        ews_password="pw",
    )

    plan = await room_plan(settings, None)
    clients = build_clients(settings)

    assert (plan.ews, plan.graph) == (["a@x.example"], [])
    assert protocols_needed(settings) == {"ews"}
    assert clients.ews is not None and clients.graph is None
    await clients.aclose()


def test_a_room_cannot_be_in_both_lists() -> None:
    with pytest.raises(ConfigError, match=r"both graph_rooms and ews_rooms: a@x\.example"):
        load_settings(graph_rooms=["a@x.example"], ews_rooms=["A@x.example"])


async def test_room_lists_without_ews_are_read_from_graph_places() -> None:
    settings = Settings(room_lists=["all@x.example"], protocol="graph")
    assert protocols_needed(settings) == {"graph"}  # no EWS client: there is no ews_url
    with pytest.raises(ConfigError, match="read from Graph's Places when PUSHSYNC_EWS_URL"):
        await room_plan(settings, None)  # and no Graph client given either

    with_ews = Settings(room_lists=["all@x.example"], protocol="graph", ews_url="https://x/ews")
    assert protocols_needed(with_ews) == {"ews", "graph"}  # expanded over EWS GetRooms
    everything = Settings(discover_all_rooms=True, protocol="graph", ews_url="https://x/ews")
    assert protocols_needed(everything) == {"graph"}  # every room: always Places


def test_graph_needs_credentials_a_client_state_and_a_public_url(tmp_path) -> None:
    with pytest.raises(ConfigError, match="PUSHSYNC_TENANT_ID"):
        build_clients(Settings(graph_rooms=["a@x.example"]))  # no msal credentials, no token

    settings = Settings(graph_rooms=["a@x.example"], graph_token="t")
    clients = build_clients(settings)
    assert clients.graph is not None and clients.ews is None
    with pytest.raises(ConfigError, match="PUSHSYNC_GRAPH_CLIENT_STATE"):
        build_graph_manager(settings, None, clients.graph)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="PUSHSYNC_PUBLIC_URL"):
        build_graph_manager(
            Settings(graph_rooms=["a@x.example"], graph_client_state="s"),
            None,
            clients.graph,  # type: ignore[arg-type]
        )
