"""The error tree decides: what may pass is waited out with a doubling back-off, the rest
propagates."""

from __future__ import annotations

import asyncio

import pytest

from pushsync.errors import (
    AuthenticationFailed,
    ConfigError,
    ExchangeUnavailable,
    RowRejected,
    StorageError,
    SubscriptionRefused,
    SyncStateExpired,
    Throttled,
)
from pushsync.retry import Backoff, retryable, survive

DELEGATE_ACCESS = "ErrorSubscriptionDelegateAccessNotSupported"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (StorageError("database away"), True),
        (ExchangeUnavailable("connection refused"), True),
        (Throttled("busy", 1.0), True),
        (RowRejected("constraint"), False),
        (AuthenticationFailed("401"), False),
        (
            SubscriptionRefused("delegate access", "ErrorSubscriptionDelegateAccessNotSupported"),
            False,
        ),
        (SyncStateExpired("old state"), False),
        (ConfigError("no URL"), False),
        (ValueError("a bug"), False),
    ],
)
def test_what_may_be_tried_again(error: Exception, expected: bool) -> None:
    assert retryable(error) is expected


def test_the_back_off_doubles_up_to_its_cap_and_a_success_starts_it_over() -> None:
    backoff = Backoff(first=0.5, cap=3.0)
    assert [backoff.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next() == 0.5


async def test_a_round_that_fails_for_a_passing_reason_is_waited_out() -> None:
    backoff, stop = Backoff(first=0.01), asyncio.Event()

    async def outage() -> int:
        raise StorageError("database away")

    assert await survive(outage, "test", backoff, stop) is None
    assert await survive(outage, "test", backoff, stop) is None
    assert backoff.next() == 0.04  # two failures waited 0.01 and 0.02

    async def works() -> int:
        return 7

    assert await survive(works, "test", backoff, stop) == 7
    assert backoff.next() == 0.01


async def test_a_round_that_fails_for_good_propagates() -> None:
    async def refused() -> int:
        raise AuthenticationFailed("credentials refused")

    with pytest.raises(AuthenticationFailed):
        await survive(refused, "test", Backoff(), asyncio.Event())
