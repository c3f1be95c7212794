"""Health, readiness, metrics and status live on the admin listener and never on the public one."""

from __future__ import annotations

import httpx

from pushsync.settings import Settings
from tests.acceptance.conftest import CALLBACK_TOKEN, EWS_HEADERS, EWS_PATH, ServerProcess
from tests.acceptance.hardening import metric, notification

ADMIN_PATHS = ("/healthz", "/readyz", "/metrics", "/status")


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
    assert ready == {"ready": True, "problems": []}
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
