"""A dead subscription whose last stored event is older than Exchange keeps events (about 30
days) gets a fresh subscription, without a watermark, and its room a full resync.

The manager runs directly (no worker, so nothing moves the stored watermark), against the
simulator and a real receiver; 31 days pass at once on the simulator's clock.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest

from pushsync.ews.subscription_manager import SubscriptionManager
from pushsync.model.outcome import Outcome
from pushsync.processes.sync import build_ews_client, ews_callback_url
from pushsync.settings import Settings
from pushsync.simulator import SimulatorThread, generated_rooms
from pushsync.simulator.exchange import Request
from pushsync.store import open_store
from pushsync.store.subscriptions import LiveSubscription, Subscriptions
from tests.acceptance.conftest import ServerProcess
from tests.acceptance.manager_checks import meeting, room_row, subscription_rows, tomorrow_at_nine
from tests.acceptance.simulated_exchange import running
from tests.acceptance.sync_loop import sync_settings

MONTH = timedelta(days=31)


async def replace_after_a_month(
    settings: Settings, thread: SimulatorThread, how: str
) -> tuple[LiveSubscription, Outcome]:
    sim = thread.sim
    room = settings.rooms[0]
    base = tomorrow_at_nine(thread)
    offset = timedelta(0)
    client = build_ews_client(settings)
    try:
        async with open_store(settings) as connector:
            subscriptions = Subscriptions(connector)
            manager = SubscriptionManager(
                client,
                subscriptions,
                callback_url=ews_callback_url(settings),
                status_frequency=settings.status_frequency_minutes,
                clock=lambda: datetime.now(UTC) + offset,
            )
            await manager.subscribe_rooms([room])
            (old,) = await subscriptions.live()
            # Events after the stored watermark, then a month in which they age out at Exchange.
            thread.call(sim.exchange.book, meeting("EARLY", base), [room])
            thread.call(sim.exchange.settle)
            thread.call(sim.clock.advance, MONTH.total_seconds())
            thread.call(sim.exchange.book, meeting("LATE", base + MONTH), [room])
            # answered now, so that no acceptance moves the mailbox on after the new subscription
            thread.call(sim.exchange.settle)
            if how == "broken":  # an error notification, just now: the watermark is tried
                await subscriptions.mark_broken(old.subscription_id, "ErrorReadEventsFailed")
            else:  # silent for a month: the manager knows not to try the watermark
                offset = MONTH
            thread.call(setattr, sim.exchange, "journal", [])
            return old, await manager.replace_dead()
    finally:
        client.close()


@pytest.mark.parametrize("how", ["broken", "silent"])
def test_a_watermark_older_than_retention_gets_a_fresh_subscription_and_a_resync(
    server: ServerProcess, caplog, how: str
) -> None:
    caplog.set_level(logging.INFO, logger="pushsync")
    rooms = generated_rooms(1)
    room = rooms[0].email
    with running(rooms=rooms, scale=60) as thread:
        settings = sync_settings(server, thread, status_frequency_minutes=15)
        old, outcome = asyncio.run(replace_after_a_month(settings, thread, how))

        assert outcome.subscribed == [room] and outcome.failed == {}
        rows = subscription_rows(server)
        new = rows[old.subscription_id]["replaced_by"]
        assert rows[old.subscription_id]["state"] == "retired"
        assert rows[new]["state"] == "active"

        def at_exchange() -> tuple[list[Request], str, str]:
            push, calendar = thread.sim.push, thread.sim.exchange.calendar(room)
            assert push is not None and calendar is not None and thread.sim.exchange.journal
            return (
                thread.sim.exchange.journal,
                push.subscriptions[new].delivered,
                calendar.log.watermark,
            )

        journal, starts_at, now_at = at_exchange()
        # fresh: the new subscription starts at the mailbox's present, nothing is replayed
        assert starts_at == now_at
        assert rows[new]["start_watermark"] == now_at
        subscribes = [r for r in journal if r.operation == "Subscribe" and r.mailbox == room]
        reason = room_row(server, room)["resync_reason"]
        assert room_row(server, room)["needs_resync"]
        if how == "broken":  # tried the watermark, was told ErrorInvalidWatermark, went fresh
            assert len(subscribes) == 2
            assert outcome.expired == [room]
            assert "watermark expired" in reason
            assert any(r.getMessage().startswith("watermark expired") for r in caplog.records)
        else:  # no point sending a month-old watermark
            assert len(subscribes) == 1
            assert reason.startswith("subscription replaced: silent since")
