"""The callback URL's secret: building the URL, checking the query, legacy mode."""

from __future__ import annotations

import pytest

from pushsync.errors import Forbidden
from pushsync.web.access.callback_token import CallbackToken, callback_url, new_token

BASE = "https://rooms.example.com/Webservices/SyncNotification.svc"


def test_callback_url_adds_the_token_and_keeps_an_existing_query() -> None:
    assert callback_url(BASE, "s3cret") == BASE + "?token=s3cret"
    assert callback_url(BASE + "?Default", "s3cret") == BASE + "?Default&token=s3cret"
    assert callback_url(BASE, "a/b+c=") == BASE + "?token=a%2Fb%2Bc%3D"
    assert callback_url(BASE, None) == BASE


def test_a_url_built_with_a_new_token_passes_the_check() -> None:
    token = new_token()
    query = callback_url(BASE + "?Default", token).split("?", 1)[1].encode()
    CallbackToken([token], allow_missing=False).check(query)


def test_escaped_token_is_unescaped_before_comparing() -> None:
    CallbackToken(["a/b+c="], allow_missing=False).check(b"token=a%2Fb%2Bc%3D")


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        (b"", "token_missing"),
        (b"Default", "token_missing"),
        (b"token=", "token_invalid"),
        (b"token=wrong", "token_invalid"),
        (b"token=s3cre", "token_invalid"),
        (b"token=s3cret2", "token_invalid"),
        (b"xtoken=s3cret", "token_missing"),
    ],
)
def test_missing_or_wrong_tokens_are_forbidden(query: bytes, reason: str) -> None:
    with pytest.raises(Forbidden) as caught:
        CallbackToken(["s3cret"], allow_missing=False).check(query)
    assert caught.value.status == 403 and caught.value.reason == reason


def test_previous_token_is_still_accepted_during_rotation() -> None:
    check = CallbackToken(["new", "old"], allow_missing=False)
    check.check(b"Default&token=old")
    check.check(b"token=new")


def test_legacy_mode_accepts_no_token_but_not_a_wrong_one() -> None:
    legacy = CallbackToken(["s3cret"], allow_missing=True)
    legacy.check(b"Default")
    with pytest.raises(Forbidden):
        legacy.check(b"token=wrong")
    CallbackToken([], allow_missing=True).check(b"")
    CallbackToken([], allow_missing=True).check(b"token=from-other-software")


def test_an_accepted_query_is_checked_again_each_time() -> None:
    check = CallbackToken(["s3cret"], allow_missing=False)
    for _ in range(3):
        check.check(b"Default&token=s3cret")
    for query in (b"Default&token=wrong", b"Default&token=s3cre", b"Default", b"Default&"):
        for _ in range(2):  # refused, and refused again
            with pytest.raises(Forbidden):
                check.check(query)
