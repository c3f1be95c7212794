"""The Graph endpoint as Graph sees it: real HTTP to a real `pushsync serve` process."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote_plus

import httpx
import pytest

from tests.acceptance.conftest import ServerProcess, shared_server
from tests.conftest import GRAPH_CORPUS

GRAPH_PATH = "/graph/notifications"
STATE = "s3cr3t-state"
JSON = {"Content-Type": "application/json; charset=utf-8"}
SAMPLES = sorted(p for p in GRAPH_CORPUS.glob("*.json") if not p.name.endswith(".expected.json"))


@pytest.fixture(scope="module")
def shared_graph_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with shared_server(
        tmp_path_factory.mktemp("graph-endpoint"), pushsync_graph_client_state=STATE
    ) as server:
        yield server


@pytest.fixture
def graph_server(shared_graph_server: ServerProcess) -> ServerProcess:
    return shared_graph_server.emptied()


def _item(state: str | None, subscription: str = "SUB-1", item_id: str = "AAA") -> dict:
    item = {
        "subscriptionId": subscription,
        "changeType": "updated",
        "resource": f"Users/room-001@contoso.example/Events/{item_id}",
        "resourceData": {"@odata.type": "#Microsoft.Graph.Event", "id": item_id},
        "tenantId": "00000000-0000-0000-0000-000000000001",
    }
    if state is not None:
        item["clientState"] = state
    return item


def _post(server: ServerProcess, items: list[dict]) -> httpx.Response:
    body = json.dumps({"value": items}).encode()
    return httpx.post(server.url + GRAPH_PATH, content=body, headers=JSON)


def test_handshake_answers_the_decoded_token_as_plain_text(graph_server: ServerProcess) -> None:
    token = (
        "Validation: Testing client application reachability for subscription Request-Id: 7f1+/=%&ü"
    )
    url = f"{graph_server.url}{GRAPH_PATH}?validationToken={quote_plus(token)}"

    response = httpx.post(url, headers={"Content-Type": "text/plain; charset=utf-8"})

    assert response.status_code == 200
    assert response.text == token
    assert response.headers["content-type"].startswith("text/plain")
    assert graph_server.rows() == []


def test_a_token_that_looks_like_html_is_never_served_as_html(graph_server: ServerProcess) -> None:
    token = '<html><script>alert("x")</script></html>'
    url = f"{graph_server.url}{GRAPH_PATH}?validationToken={quote_plus(token)}"

    response = httpx.post(url)

    assert response.status_code == 200
    assert response.content == token.encode()  # byte for byte: not escaped, not wrapped
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in response.headers["content-security-policy"]


def test_a_repeated_or_empty_token_is_refused(graph_server: ServerProcess) -> None:
    for query in ("validationToken=a&validationToken=b", "validationToken="):
        response = httpx.post(f"{graph_server.url}{GRAPH_PATH}?{query}")
        assert response.status_code == 400, query


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.stem)
def test_every_sample_stores_its_rows_and_is_answered_202(
    graph_server: ServerProcess, sample: Path
) -> None:
    expected = json.loads(sample.with_name(sample.stem + ".expected.json").read_text())

    response = httpx.post(graph_server.url + GRAPH_PATH, content=sample.read_bytes(), headers=JSON)

    assert response.status_code == 202
    rows = graph_server.rows()
    assert [{k: row[k] for k in e} for row, e in zip(rows, expected["events"], strict=True)] == (
        expected["events"]
    )
    assert len(rows) == len(expected["events"])
    assert {(r["protocol"], r["subscription_id"]) for r in rows} == {
        ("graph", expected["subscription_id"])
    }
    assert {r["remote_addr"] for r in rows} == {"127.0.0.1"}


def test_resource_rows_carry_the_event_id(graph_server: ServerProcess) -> None:
    response = _post(graph_server, [_item(STATE, item_id="AAMkAG=+/x")])
    assert response.status_code == 202
    [row] = graph_server.rows()
    assert (row["event_type"], row["item_id"]) == ("updated", "AAMkAG=+/x")
    assert row["resource"] == "Users/room-001@contoso.example/Events/AAMkAG=+/x"


def test_a_redelivered_change_adds_no_row_and_a_new_version_does(
    graph_server: ServerProcess,
) -> None:
    first = _item(STATE)
    first["resourceData"]["@odata.etag"] = 'W/"DwAAABYAAAB1"'
    newer = json.loads(json.dumps(first))
    newer["resourceData"]["@odata.etag"] = 'W/"DwAAABYAAAB2"'

    answers = [_post(graph_server, batch).status_code for batch in ([first, first], [first])]
    answers.append(_post(graph_server, [newer]).status_code)

    assert answers == [202, 202, 202]  # Graph is answered as usual: nothing to retry
    rows = graph_server.rows()
    assert [row["item_change_key"] for row in rows] == ['W/"DwAAABYAAAB1"', 'W/"DwAAABYAAAB2"']


def test_forged_client_state_is_403_and_writes_nothing(graph_server: ServerProcess) -> None:
    earlier = len(graph_server.logs())  # the shared receiver's log holds earlier tests' lines
    for state in ("guess", "s3cr3t-statf", "", None):
        response = _post(graph_server, [_item(state)])
        assert response.status_code == 403, state
    assert graph_server.rows() == []
    assert "reason=client_state" in graph_server.logs()[earlier:]


def test_a_mixed_batch_keeps_only_the_genuine_items(graph_server: ServerProcess) -> None:
    lifecycle = {"subscriptionId": "SUB-2", "lifecycleEvent": "subscriptionRemoved"}
    items = [
        _item(STATE, "SUB-1", "GENUINE"),
        _item("forged", "SUB-1", "FORGED"),
        {**lifecycle, "clientState": STATE},
        {**lifecycle, "clientState": "forged", "lifecycleEvent": "missed"},
        _item(STATE, "SUB-3", "OTHER-SUBSCRIPTION"),
    ]

    response = _post(graph_server, items)

    assert response.status_code == 202
    assert [(r["subscription_id"], r["event_type"], r["item_id"]) for r in graph_server.rows()] == [
        ("SUB-1", "updated", "GENUINE"),
        ("SUB-2", "subscriptionRemoved", None),
        ("SUB-3", "updated", "OTHER-SUBSCRIPTION"),
    ]


def test_the_previous_client_state_is_accepted_while_rotating(server_factory) -> None:
    server = server_factory(
        pushsync_graph_client_state="new-state", pushsync_graph_client_state_previous=STATE
    )
    assert _post(server, [_item(STATE, item_id="OLD")]).status_code == 202
    assert _post(server, [_item("new-state", item_id="NEW")]).status_code == 202
    assert _post(server, [_item("older-state")]).status_code == 403
    assert [r["item_id"] for r in server.rows()] == ["OLD", "NEW"]


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b'{"value": [', JSON, 400),
        (b"<xml/>", {"Content-Type": "text/xml"}, 415),
        (b'{"value": []}', JSON, 400),
        (json.dumps({"value": [_item(STATE)] * 1001}).encode(), JSON, 400),
    ],
    ids=["truncated", "not-json", "empty", "too-many"],
)
def test_unreadable_batches_are_refused_without_a_row(
    graph_server: ServerProcess, body: bytes, headers: dict[str, str], status: int
) -> None:
    response = httpx.post(graph_server.url + GRAPH_PATH, content=body, headers=headers)
    assert response.status_code == status
    assert graph_server.rows() == []


def test_only_post_is_allowed(graph_server: ServerProcess) -> None:
    response = httpx.get(graph_server.url + GRAPH_PATH + "?validationToken=abc")
    assert response.status_code == 405


def test_without_a_client_state_the_graph_path_is_not_served(server: ServerProcess) -> None:
    response = _post(server, [_item(STATE)])
    assert response.status_code == 404
    assert server.rows() == []


def test_storage_failure_is_503_and_graph_retry_is_stored(server_factory) -> None:
    server = server_factory(
        pushsync_graph_client_state=STATE, pushsync_sqlite_busy_timeout_ms="100"
    )
    blocker = sqlite3.connect(server.database, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        refused = _post(server, [_item(STATE, item_id="RETRIED")])
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert refused.status_code == 503
    assert server.rows() == []

    retried = _post(server, [_item(STATE, item_id="RETRIED")])

    assert retried.status_code == 202
    assert [r["item_id"] for r in server.rows()] == ["RETRIED"]
