"""Renewals are spread: subscriptions that expire together are not all due together."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

from pushsync.graph.subscription_manager import renewal_due
from pushsync.store.subscriptions import LiveSubscription

EXPIRES = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def _subscriptions(count: int) -> list[LiveSubscription]:
    """`count` subscriptions made in one burst (onboarding): one expiry for all."""
    return [
        LiveSubscription(
            subscription_id=str(uuid.UUID(int=n + 1)),
            mailbox=f"room-{n}@contoso.example",
            protocol="graph",
            state="active",
            status_frequency=15,
            last_event_at=EXPIRES - 7 * DAY,
            last_watermark=None,
            expires_at=EXPIRES,
        )
        for n in range(count)
    ]


def _due(subscriptions: list[LiveSubscription], left: timedelta) -> int:
    return sum(renewal_due(s, EXPIRES - left, DAY) for s in subscriptions)


def test_subscriptions_expiring_together_come_due_over_a_day_not_at_once() -> None:
    fleet = _subscriptions(2000)

    assert _due(fleet, 2 * DAY + timedelta(minutes=1)) == 0  # not before twice the margin
    quarter, half = _due(fleet, 1.75 * DAY), _due(fleet, 1.5 * DAY)
    assert 400 <= quarter <= 600 and 900 <= half <= 1100  # spread evenly over the stretch
    assert _due(fleet, DAY - timedelta(seconds=1)) == 2000  # all, before renew_before is left


def test_the_moment_a_subscription_is_due_is_its_own_in_every_process() -> None:
    """A restart (or another process) computes the same moments: nothing falls due at once."""
    first, again = _subscriptions(200), _subscriptions(200)

    for left in (1.2 * DAY, 1.6 * DAY, 1.9 * DAY):
        now = EXPIRES - left
        assert [renewal_due(s, now, DAY) for s in first] == [
            renewal_due(s, now, DAY) for s in again
        ]


def test_a_subscription_without_an_expiry_is_due() -> None:
    [subscription] = _subscriptions(1)
    unknown = dataclasses.replace(subscription, expires_at=None)

    assert renewal_due(unknown, EXPIRES - 6 * DAY, DAY)
