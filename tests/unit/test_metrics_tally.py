"""The answered counter is added up in the event loop and reaches prometheus once per turn."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from pushsync.web.metrics import count_answered

ANSWERED = "pushsync_notifications_answered_total"


def answered() -> float:
    return REGISTRY.get_sample_value(ANSWERED) or 0.0


async def test_answers_in_one_turn_reach_the_counter_after_it() -> None:
    before = answered()
    for _ in range(5):
        count_answered()
    assert answered() == before  # still in this turn of the loop
    await asyncio.sleep(0)
    assert answered() == before + 5


def test_every_event_loop_gets_its_own_flush() -> None:
    async def count(times: int) -> None:
        for _ in range(times):
            count_answered()
        await asyncio.sleep(0)

    before = answered()
    asyncio.run(count(3))
    asyncio.run(count(2))
    assert answered() == before + 5


def test_a_flush_left_behind_by_a_stopped_loop_is_taken_over() -> None:
    loop = asyncio.new_event_loop()

    def count_and_stop() -> None:
        count_answered()  # schedules the flush on this loop, which stops before running it
        loop.stop()

    before = answered()
    loop.call_soon(count_and_stop)
    loop.run_forever()
    loop.close()
    assert answered() == before

    async def count_one_more() -> None:
        count_answered()
        await asyncio.sleep(0)

    asyncio.run(count_one_more())
    assert answered() == before + 2
