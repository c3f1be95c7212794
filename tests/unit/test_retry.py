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
from pushsync.retry import Backoff, in_turn, retryable, survive

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


async def test_a_failed_item_ends_the_round_once_the_items_under_way_have_finished() -> None:
    """A round of work in lanes fails as a whole: after the failure no lane takes another item
    (a retried round would otherwise race the rest of this one), the items already under way
    run to their end, and the first error is raised."""
    started: list[int] = []
    finished: list[int] = []

    async def work(item: int) -> None:
        started.append(item)
        await asyncio.sleep(0.01 if item != 5 else 0)
        if item == 5:
            raise StorageError("the pool is exhausted")
        await asyncio.sleep(0.01)
        finished.append(item)

    with pytest.raises(StorageError, match="pool"):
        await in_turn(list(range(100)), work, at_once=4)

    assert 5 in started and max(started) < 5 + 4  # only the lanes' items in hand went on
    assert sorted(finished) == sorted(i for i in started if i != 5)  # none cut short


async def test_every_item_is_worked_on_in_order_at_most_so_many_at_once() -> None:
    under_way, most, done = 0, 0, []

    async def work(item: int) -> None:
        nonlocal under_way, most
        under_way += 1
        most = max(most, under_way)
        await asyncio.sleep(0)
        under_way -= 1
        done.append(item)

    await in_turn(list(range(50)), work, at_once=3)
    assert sorted(done) == list(range(50)) and most == 3
