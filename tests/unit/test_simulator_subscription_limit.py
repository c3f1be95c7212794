"""The simulator's subscription write limit: a sliding window, refusals counted in it."""

from __future__ import annotations

from pushsync.simulator.graph.subscription_limit import SubscriptionWriteLimit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_writes_beyond_the_limit_in_a_window_are_refused_until_the_oldest_leaves() -> None:
    clock = Clock()
    limit = SubscriptionWriteLimit(3, 2.0, monotonic=clock)

    assert [limit.admit() for _ in range(3)] == [None, None, None]
    clock.now += 0.5
    assert limit.admit() == 2  # the first three leave the window at 102.0: ceil(1.5)
    assert limit.violations == 1

    clock.now = 102.1  # the first three have left; the refused one still counts
    assert [limit.admit() for _ in range(3)] == [None, None, 1]
    assert limit.violations == 2
    assert limit.most_in_any_window() == 4


def test_a_storm_refuses_whatever_the_rate_and_early_writes_are_counted() -> None:
    clock = Clock()
    limit = SubscriptionWriteLimit(100, 20.0, monotonic=clock)
    limit.storm(2, retry_after=5)

    assert limit.admit() == 5
    clock.now += 0.1
    assert limit.admit() == 5  # on its way before the client read the first 429
    clock.now += 5.0
    assert limit.admit() is None  # waited: the storm is over
    assert limit.violations == 0 and limit.early_writes(grace=0.5) == 0

    limit.storm(1, retry_after=5)
    assert limit.admit() == 5
    clock.now += 2.0
    assert limit.admit() is None  # did not wait
    assert limit.early_writes(grace=0.5) == 1
