"""Graph change notifications: the sample corpus, clientState checks, the handshake token."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest

from pushsync.errors import MalformedNotification, RejectedRequest
from pushsync.graph.change_notification import client_state_matches, parse_change_notifications
from pushsync.graph.validation import validation_token
from tests.conftest import GRAPH_CORPUS

GENUINE = client_state_matches("s3cr3t-state")
SAMPLES = sorted(p for p in GRAPH_CORPUS.glob("*.json") if not p.name.endswith(".expected.json"))


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.stem)
def test_every_sample_produces_exactly_its_rows(sample: Path) -> None:
    expected = json.loads(sample.with_name(sample.stem + ".expected.json").read_text())

    batch = parse_change_notifications(sample.read_bytes(), GENUINE, remote_addr="192.0.2.1")

    assert batch.forged == 0
    assert [
        {k: getattr(r, k) for k in e} for r, e in zip(batch.rows, expected["events"], strict=True)
    ] == expected["events"]
    assert len(batch.rows) == len(expected["events"])
    assert {r.subscription_id for r in batch.rows} == {expected["subscription_id"]}
    assert {r.protocol for r in batch.rows} == {"graph"}
    assert all(r.watermark is None for r in batch.rows)
    assert all(r.item_change_key for r in batch.rows if r.event_type in ("created", "updated"))


def test_the_redelivery_key_is_the_change_and_the_version_of_the_item() -> None:
    def key(
        change: str = "updated", etag: str | None = 'W/"v1"', item: str = "AAA"
    ) -> bytes | None:
        data: dict = {"id": item} | ({"@odata.etag": etag} if etag else {})
        body = {"value": [_item("s3cr3t-state", change=change) | {"resourceData": data}]}
        (row,) = parse_change_notifications(json.dumps(body).encode(), GENUINE).rows
        return row.event_key()

    assert key() == key() is not None  # the same change, delivered twice
    assert len({key(), key(etag='W/"v2"'), key(change="deleted"), key(item="BBB")}) == 4
    assert key(etag=None) is None  # nothing to tell a redelivery from a new change by


def _item(state: str | None, subscription: str = "SUB-1", change: str = "updated") -> dict:
    item = {
        "subscriptionId": subscription,
        "changeType": change,
        "resource": "Users/room/Events/AAA",
        "resourceData": {"id": "AAA"},
    }
    if state is not None:
        item["clientState"] = state
    return item


def test_forged_items_are_dropped_and_counted() -> None:
    body = json.dumps({"value": [_item("s3cr3t-state"), _item("guess"), _item(None)]}).encode()
    batch = parse_change_notifications(body, GENUINE)
    assert batch.forged == 2
    assert [r.item_id for r in batch.rows] == ["AAA"]


def test_a_mixed_batch_of_subscriptions_and_lifecycle_events() -> None:
    lifecycle = {
        "subscriptionId": "SUB-2",
        "lifecycleEvent": "subscriptionRemoved",
        "clientState": "s3cr3t-state",
    }
    body = json.dumps({"value": [_item("s3cr3t-state", "SUB-1", "created"), lifecycle]}).encode()
    rows = parse_change_notifications(body, GENUINE).rows
    assert [(r.subscription_id, r.event_type, r.resource) for r in rows] == [
        ("SUB-1", "created", "Users/room/Events/AAA"),
        ("SUB-2", "subscriptionRemoved", None),
    ]


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"", "not JSON"),
        (b"[1]", "value"),
        (b'{"value": []}', "no notification"),
        (b'{"value": [1]}', "object"),
        (json.dumps({"value": [_item("x", change="exploded")]}).encode(), "changeType"),
        (json.dumps({"value": [{"lifecycleEvent": "missed"}]}).encode(), "subscriptionId"),
        (
            json.dumps({"value": [{"subscriptionId": "S", "lifecycleEvent": "party"}]}).encode(),
            "lifecycleEvent",
        ),
        (json.dumps({"value": [_item("x") | {"resource": 5}]}).encode(), "resource"),
        (b"[" * 100000, "not JSON"),
    ],
)
def test_malformed_batches_are_refused(body: bytes, why: str) -> None:
    with pytest.raises(MalformedNotification, match=why):
        parse_change_notifications(body, GENUINE)


@pytest.mark.parametrize(
    "token",
    [
        "plain",
        "a b+c/d=e&f",
        "<script>alert(1)</script>",
        "Validation: Testing client application reachability",
    ],
)
def test_validation_token_is_decoded_exactly(token: str) -> None:
    assert validation_token(f"validationToken={quote(token, safe='')}".encode()) == token


def test_no_token_and_bad_tokens() -> None:
    assert validation_token(b"") is None
    assert validation_token(b"other=1") is None
    with pytest.raises(RejectedRequest):
        validation_token(b"validationToken=a&validationToken=b")
    with pytest.raises(RejectedRequest):
        validation_token(b"validationToken=" + b"x" * 2000)
