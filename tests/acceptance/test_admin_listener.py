"""Health, readiness, metrics and status live on the admin listener and never on the public one."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx

from pushsync.settings import Settings
from pushsync.store import connect
from pushsync.store.processes import ProcessHeartbeats
from pushsync.store.subscriptions import Subscriptions
from tests.acceptance.conftest import CALLBACK_TOKEN, EWS_HEADERS, EWS_PATH, ServerProcess
from tests.acceptance.hardening import metric, notification

ADMIN_PATHS = ("/healthz", "/readyz", "/metrics", "/status", "/rooms", "/")


def admin(server: ServerProcess, path: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{server.admin_port}{path}", timeout=10)


def test_admin_listener_is_loopback_by_default() -> None:
    assert Settings(allow_callbacks_without_token=True).admin_host == "127.0.0.1"


def test_admin_paths_answer_only_on_the_admin_listener(server: ServerProcess) -> None:
    for path in ADMIN_PATHS:
        assert admin(server, path).status_code == 200, path
        public = httpx.get(server.url + path)
        assert public.status_code == 404, path
        assert b"# HELP" not in public.content and b"problems" not in public.content
    assert server.rows() == []


def test_readiness_and_status(server: ServerProcess) -> None:
    ready = admin(server, "/readyz").json()
    # no room, so no worker is needed; the receiver itself beats
    assert ready == {"ready": True, "problems": [], "processes_down": []}
    status = admin(server, "/status")
    assert status.json()["address_filter"]["microsoft_version"] == "2022072800"
    assert status.json()["address_filter"]["operator_networks"] == 2
    assert CALLBACK_TOKEN not in status.text


def test_readiness_fails_when_the_public_listener_is_gone(server: ServerProcess) -> None:
    assert admin(server, "/readyz").status_code == 200
    server.stop()
    # the admin thread dies with the process: nothing answers, which a probe also reads as
    # not ready
    try:
        response = admin(server, "/readyz")
    except httpx.TransportError:
        return
    assert response.status_code == 503


def test_metrics_are_summed_over_worker_processes(server_factory) -> None:
    server = server_factory(pushsync_workers="2")
    for n in range(20):  # a new connection each time, so both workers take some
        response = httpx.post(
            server.url + EWS_PATH,
            content=notification(f"metrics-{n}"),
            headers={**EWS_HEADERS, "Connection": "close"},
        )
        assert response.status_code == 200
    for _ in range(3):
        httpx.post(server.url + EWS_PATH + "?token=wrong", content=b"<x/>", headers=EWS_HEADERS)
    assert metric(server, "pushsync_notifications_answered_total") == 20
    assert metric(server, "pushsync_requests_rejected_total", reason="token_invalid") == 3
    assert len(server.rows()) == 20


def test_the_status_page_says_which_room_is_out_of_sync_and_why(server: ServerProcess) -> None:
    async def rooms() -> None:
        connector = connect(server.database_url)
        await connector.open()
        try:
            subscriptions = Subscriptions(connector)
            now = datetime.now(UTC)
            await subscriptions.ensure_rooms(["room-1@contoso.example"], "ews", now)
            error = "subscribe: ErrorNonExistentMailbox <script>alert(1)</script>"
            await subscriptions.room_error("room-1@contoso.example", error, now)
            # a live worker, so that the room's own problem shows (not "no worker")
            await ProcessHeartbeats(connector).register("worker", "ews", now)
        finally:
            await connector.close()

    assert "0 of 0 rooms in sync" in admin(server, "/").text
    asyncio.run(rooms())

    page = admin(server, "/")
    listing = admin(server, "/rooms").json()

    assert page.headers["content-type"].startswith("text/html")
    assert "0 of 1 rooms in sync" in page.text and "1 no subscription" in page.text
    assert "room-1@contoso.example" in page.text
    assert "&lt;script&gt;" in page.text and "<script>alert" not in page.text
    assert (listing["rooms"], listing["in_sync"]) == (1, 0)
    (room,) = listing["statuses"]
    assert room["kind"] == "no subscription" and room["problem"].endswith("</script>")
    assert httpx.get(server.url + "/").status_code == 404  # never on the public listener
    metrics = admin(server, "/metrics").text
    assert 'pushsync_rooms{status="no subscription"} 1.0' in metrics
    assert 'pushsync_rooms{status="in sync"} 0.0' in metrics
    assert "pushsync_oldest_waiting_notification_seconds 0.0" in metrics
