"""The receiver as Exchange sees it: real HTTP to a real `pushsync serve` process."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Iterator

import httpx
import pytest
from lxml import etree

from tests.acceptance.conftest import (
    EWS_HEADERS,
    EWS_PATH,
    ServerProcess,
    pushsync_command,
    shared_server,
)
from tests.conftest import EWS_CORPUS, FIXTURES

M = "{http://schemas.microsoft.com/exchange/services/2006/messages}"


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with shared_server(tmp_path_factory.mktemp("receiver")) as server:
        yield server


@pytest.fixture
def server(shared: ServerProcess) -> ServerProcess:
    """One receiver for the module, with empty tables for each test."""
    return shared.emptied()


def _status(response: httpx.Response) -> str:
    root = etree.fromstring(response.content)
    return root.findtext(f".//{M}SendNotificationResult/{M}SubscriptionStatus")


def test_product_page_packet_is_stored_and_answered_ok(server: ServerProcess) -> None:
    body = (FIXTURES / "product-page-packet.xml").read_bytes()

    response = httpx.post(server.url + EWS_PATH + "?Default", content=body, headers=EWS_HEADERS)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    assert _status(response) == "OK"
    rows = server.rows()
    assert [(r["event_type"], r["watermark"]) for r in rows] == [
        ("Modified", "AQAAAExY/dNdjDVKjtBVHKR5IOsoIukhAAAAAAE="),
        ("Modified", "AQAAAExY/dNdjDVKjtBVHKR5IOstIukhAAAAAAE="),
    ]
    item, folder = rows
    assert item["subscription_id"].startswith("LABkYjhwcjAxbWI2NDg1")
    assert item["item_id"].startswith("AQMkAGYzNDgzOTU5") and item["item_change_key"] == "DwAAAA=="
    assert folder["folder_id"] and folder["item_id"] is None
    assert item["previous_watermark"] == "AQAAAExY/dNdjDVKjtBVHKR5IOurFukhAAAAAAE="
    assert item["more_events"] == 0
    assert item["event_time"].startswith("2020-12-03T11:03:50")
    assert item["remote_addr"] == "127.0.0.1"
    assert item["protocol"] == "ews"


def test_whole_corpus_over_http(server: ServerProcess) -> None:
    expected = 0
    with httpx.Client(base_url=server.url) as client:
        for sample in sorted(EWS_CORPUS.glob("*.xml")):
            response = client.post(EWS_PATH, content=sample.read_bytes(), headers=EWS_HEADERS)
            assert response.status_code == 200, sample.name
            expected += len(parse_count(sample))
    assert len(server.rows()) == expected


def parse_count(sample) -> list:
    data = json.loads(sample.with_suffix(".json").read_text())
    return data.get("events", [None])


def test_redelivery_is_answered_ok_and_adds_no_row(server: ServerProcess) -> None:
    body = (EWS_CORPUS / "valid-003.xml").read_bytes()
    first = httpx.post(server.url + EWS_PATH, content=body, headers=EWS_HEADERS)
    again = httpx.post(server.url + EWS_PATH, content=body, headers=EWS_HEADERS)
    assert (first.status_code, again.status_code) == (200, 200)
    assert _status(again) == "OK"
    assert len(server.rows()) == 5


def test_retired_subscription_gets_unsubscribe(server: ServerProcess) -> None:
    """A subscription known only from its notifications (no manager recorded it) can be
    retired by its whole id; its next notification is answered Unsubscribe, adding nothing."""
    body = (EWS_CORPUS / "valid-000.xml").read_bytes()
    subscription = json.loads((EWS_CORPUS / "valid-000.json").read_text())["subscription_id"]
    assert httpx.post(server.url + EWS_PATH, content=body, headers=EWS_HEADERS).status_code == 200
    before = len(server.rows())
    subprocess.run(
        pushsync_command(
            "subscriptions", "retire", subscription, "--database-url", server.database_url
        ),
        check=True,
        capture_output=True,
    )

    response = httpx.post(server.url + EWS_PATH, content=body, headers=EWS_HEADERS)

    assert response.status_code == 200
    assert _status(response) == "Unsubscribe"
    assert len(server.rows()) == before


def test_wrong_path_is_404_and_writes_nothing(server: ServerProcess) -> None:
    earlier = len(server.logs())  # the shared receiver's log holds earlier tests' lines
    body = (EWS_CORPUS / "valid-001.xml").read_bytes()
    for path in (
        "/",
        "/Default/Calendar/Calendar/Find",
        EWS_PATH + "/extra",
        "/webservices/syncnotification.svc",
    ):
        response = httpx.post(server.url + path, content=body, headers=EWS_HEADERS)
        assert response.status_code == 404, path
    assert server.rows() == []
    assert "reason=path" in server.logs()[earlier:]


def test_parse_error_is_400_with_a_logged_reason_and_no_row(server: ServerProcess) -> None:
    earlier = len(server.logs())
    body = (EWS_CORPUS / "valid-005.xml").read_bytes()[:-40]  # truncated
    response = httpx.post(server.url + EWS_PATH, content=body, headers=EWS_HEADERS)
    assert response.status_code == 400
    assert "not well-formed" in response.text
    assert server.rows() == []
    logged = server.logs()[earlier:]
    assert "reason=malformed" in logged and "remote_addr=127.0.0.1" in logged


def test_storage_failure_is_503_and_recovers(server_factory) -> None:
    server = server_factory(pushsync_sqlite_busy_timeout_ms="100")
    body = (EWS_CORPUS / "valid-003.xml").read_bytes()
    blocker = sqlite3.connect(server.database, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        refused = httpx.post(server.url + EWS_PATH, content=body, headers=EWS_HEADERS)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert refused.status_code == 503
    assert "OK" not in refused.text
    assert server.rows() == []

    retried = httpx.post(server.url + EWS_PATH, content=body, headers=EWS_HEADERS)
    assert retried.status_code == 200 and _status(retried) == "OK"
    assert len(server.rows()) == 5
