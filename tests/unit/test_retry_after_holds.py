"""Back-offs per mailbox and for the app, bounded; what a Graph 429 is read as."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from pushsync.errors import Throttled
from pushsync.graph import throttling
from pushsync.graph.client import SUBSCRIPTION_CAP, _answer
from pushsync.retry import APP, RetryAfterHolds, bounded

HOUR = 3600.0
CAP_MESSAGE = (
    "Operation: Create; Exception: [Status Code: 429; Reason: Resource"
    " 'SubscriptionCountReached' has reached limit of '1000'. Please retry after"
    " '12/31/9999 11:59:59 PM']"
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [(5.0, 5.0), (-3.0, 0.0), (251606135815.0, HOUR), (float("inf"), HOUR), (float("nan"), 0.0)],
)
def test_a_retry_after_is_bounded(retry_after: float, expected: float) -> None:
    assert bounded(retry_after, HOUR) == expected


def test_a_mailbox_back_off_holds_that_mailbox_only_and_ends() -> None:
    clock = Clock()
    back_off = RetryAfterHolds(HOUR, clock)

    assert back_off.defer("Room-1@Contoso.example", 251606135815.0) == HOUR

    assert back_off.held("room-1@contoso.example") == HOUR
    assert back_off.held("room-2@contoso.example") == 0.0
    assert back_off.held(None) == 0.0
    clock.now += HOUR
    assert back_off.held("room-1@contoso.example") == 0.0


def test_the_app_back_off_holds_every_mailbox() -> None:
    clock = Clock()
    back_off = RetryAfterHolds(HOUR, clock)
    back_off.defer(APP, 20)
    back_off.defer("room-1@contoso.example", 5)

    assert back_off.held("room-1@contoso.example") == 20
    assert back_off.held("room-2@contoso.example") == 20
    assert back_off.held(None) == 20


def test_a_shorter_retry_after_does_not_shorten_a_back_off() -> None:
    clock = Clock()
    back_off = RetryAfterHolds(HOUR, clock)
    back_off.defer("room@contoso.example", 60)
    back_off.defer("room@contoso.example", 1)

    assert back_off.remaining("room@contoso.example") == 60


def _throttled(message: str, retry_after: str, code: str = "ExtensionError") -> Throttled:
    response = httpx.Response(
        429,
        headers={"retry-after": retry_after},
        json={"error": {"code": code, "message": message}},
    )
    with pytest.raises(Throttled) as raised:
        _answer("POST", response)
    return raised.value


def test_the_subscription_cap_is_read_from_the_message() -> None:
    exc = _throttled(CAP_MESSAGE, "251606135815")

    assert exc.code == SUBSCRIPTION_CAP
    assert exc.retry_after == 251606135815.0
    assert throttling.scope("room@contoso.example", exc, HOUR) == "room@contoso.example"
    assert throttling.is_room_problem(exc, HOUR)


def test_a_retry_after_given_as_an_http_date_counts_seconds_to_it() -> None:
    soon = datetime.now(UTC) + timedelta(minutes=10)
    exc = _throttled("Too many requests", format_datetime(soon, usegmt=True), "TooManyRequests")

    assert 500 < exc.retry_after <= 600
    assert exc.code == "TooManyRequests"


def test_a_year_9999_http_date_does_not_overflow() -> None:
    exc = _throttled(CAP_MESSAGE, "Fri, 31 Dec 9999 23:59:59 GMT")

    assert exc.retry_after > 200 * 365 * 86400
    assert bounded(exc.retry_after, HOUR) == HOUR


def test_an_unreadable_retry_after_falls_back_to_the_default() -> None:
    assert _throttled("Too many requests", "soon", "TooManyRequests").retry_after == 10.0


@pytest.mark.parametrize(
    ("message", "retry_after", "expected"),
    [
        ("Application is over its MailboxConcurrency limit.", 1.0, "room@contoso.example"),
        ("Application is over its RequestRate limit.", 30.0, "room@contoso.example"),
        ("Too many requests. Please try again later.", 5.0, APP),  # the write limit
        ("Too many requests. Please try again later.", 10 * HOUR, "room@contoso.example"),
    ],
)
def test_a_429_holds_for_what_it_was_answered_for(
    message: str, retry_after: float, expected: str
) -> None:
    exc = Throttled(f"Graph POST answered 429 X: {message}", retry_after)

    assert throttling.scope("room@contoso.example", exc, HOUR) == expected


def test_a_far_retry_after_about_no_mailbox_holds_nothing() -> None:
    """It cannot be the app's write limit (20-second windows): not every room is held."""
    exc = Throttled("Graph DELETE answered 429 X: Too many requests", 10 * HOUR)

    assert throttling.scope(None, exc, HOUR) is None
    assert throttling.scope(None, Throttled("Too many requests", 2.0), HOUR) == APP


def test_the_cap_problem_names_the_cap_and_how_to_find_the_subscriptions() -> None:
    exc = Throttled(CAP_MESSAGE, 251606135815.0, SUBSCRIPTION_CAP)

    text = throttling.problem(exc, datetime(2026, 12, 1, 13, 0, tzinfo=UTC), HOUR)

    assert text.startswith("mailbox has 1,000 subscriptions") and "SubscriptionCountReached" in text
    assert "GET /subscriptions" in text and "Subscription.Read.All" in text
    assert "lists only its own" in text  # the app's own token cannot see the others
    assert "tried again at 2026-12-01 13:00 UTC" in text


def test_a_wait_of_years_is_named_as_a_limit_not_load() -> None:
    exc = Throttled("Graph POST answered 429 X: Too many requests", 5 * 365 * 86400.0)

    text = throttling.problem(exc, datetime(2026, 12, 1, 13, 0, tzinfo=UTC), HOUR)

    assert "5 years" in text and "not load" in text
