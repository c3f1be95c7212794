"""The simulator's Graph refuses subscriptions as Graph does for a hybrid tenant's on-premises
mailbox (404 MailboxNotEnabledForRESTAPI, reads still served) and for a mailbox an application
access policy keeps from the app (403 ErrorAccessDenied for every call), over real HTTP with
pushsync's Graph client, which must raise the errors `graph/polling.py` recognises."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from pushsync.errors import AuthenticationFailed
from pushsync.graph import polling
from pushsync.graph.auth import static_token
from pushsync.graph.client import GraphClient, NotFound
from pushsync.simulator import Simulator, SimulatorConfig, generated_rooms
from pushsync.simulator.graph.api import GRAPH_TOKEN

ROOMS = generated_rooms(3)
ORDINARY, HYBRID, DENIED = (room.email for room in ROOMS)


@pytest.fixture
async def graph() -> AsyncIterator[tuple[Simulator, GraphClient]]:
    config = SimulatorConfig(
        rooms=ROOMS,
        epoch=datetime.now(UTC),
        on_premises_rooms=frozenset({HYBRID}),
        denied_rooms=frozenset({DENIED.upper()}),  # addresses compare without case
    )
    async with Simulator(config) as sim:
        client = GraphClient(static_token(GRAPH_TOKEN), sim.graph_url)
        try:
            yield sim, client
        finally:
            await client.aclose()


async def _subscribe(client: GraphClient, mailbox: str, url: str) -> object:
    return await client.create_subscription(
        mailbox,
        notification_url=url,
        lifecycle_url=url,
        client_state="s",
        expires_at=datetime.now(UTC) + timedelta(hours=1),
    )


async def test_an_on_premises_mailbox_refuses_a_subscription_but_is_read(graph) -> None:
    sim, client = graph
    with pytest.raises(NotFound) as refused:
        await _subscribe(client, HYBRID, "https://pushsync.example/graph/notifications")
    assert "MailboxNotEnabledForRESTAPI" in str(refused.value)
    assert "REST API is not yet supported for this mailbox." in str(refused.value)
    assert polling.reason(refused.value) == polling.ON_PREMISES
    now = sim.clock.now()
    delta = await client.calendar_view_delta(HYBRID, now, now + timedelta(days=30))
    assert delta.delta_link  # reads work
    assert sim.graph.webhooks.active(HYBRID) == []


async def test_a_denied_mailbox_refuses_everything(graph) -> None:
    sim, client = graph
    with pytest.raises(AuthenticationFailed) as refused:
        await _subscribe(client, DENIED, "https://pushsync.example/graph/notifications")
    assert "ErrorAccessDenied" in str(refused.value)
    assert polling.reason(refused.value) == polling.ACCESS_DENIED
    now = sim.clock.now()
    with pytest.raises(AuthenticationFailed):
        await client.calendar_view_delta(DENIED, now, now + timedelta(days=30))
    with pytest.raises(AuthenticationFailed):
        await client.event(DENIED, "AAMk-any")
    # an ordinary room is read as before, and a refusal of another kind is not a polling one
    await client.calendar_view_delta(ORDINARY, now, now + timedelta(days=30))
    assert polling.reason(NotFound("Graph GET answered 404 ErrorItemNotFound")) is None
