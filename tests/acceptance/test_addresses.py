"""The address filter over real sockets: allowed, denied, IPv6, IPv4-mapped, trusted proxies."""

from __future__ import annotations

import itertools

import httpx

from tests.acceptance.conftest import EWS_HEADERS, EWS_PATH, ServerProcess
from tests.acceptance.hardening import notification

_tags = itertools.count()


def post(url: str, **headers: str) -> httpx.Response:
    named = {name.replace("_", "-"): value for name, value in headers.items()}
    body = notification(f"addr-{next(_tags)}")
    return httpx.post(url + EWS_PATH, content=body, headers={**EWS_HEADERS, **named})


def dual_stack(server_factory, allowed: str) -> ServerProcess:
    """A listener on `::` that also takes IPv4. uvicorn binds the socket itself (no V6ONLY)
    when it runs several workers; with one, asyncio makes an IPv6-only socket."""
    return server_factory(
        pushsync_host="::", pushsync_workers="2", pushsync_allowed_networks=allowed
    )


def test_allowed_source_is_stored_with_its_address(server_factory) -> None:
    server = server_factory()  # loopback allowed
    assert post(server.url).status_code == 200
    assert {row["remote_addr"] for row in server.rows()} == {"127.0.0.1"}


def test_denied_source_is_403_with_a_log_line_and_no_row(server_factory) -> None:
    server = server_factory(pushsync_allowed_networks="192.0.2.0/24")
    assert post(server.url).status_code == 403
    assert server.rows() == []
    assert "reason=address" in server.logs() and "remote_addr=127.0.0.1" in server.logs()


def test_ipv6_peer(server_factory) -> None:
    server = dual_stack(server_factory, "::1")
    ipv6 = f"http://[::1]:{server.port}"
    assert post(ipv6).status_code == 200
    assert post(server.url).status_code == 403  # 127.0.0.1 arrives as ::ffff:127.0.0.1
    assert [row["remote_addr"] for row in server.rows()] == ["::1"]


def test_ipv4_mapped_peer_matches_the_ipv4_network(server_factory) -> None:
    server = dual_stack(server_factory, "127.0.0.0/8")
    assert post(server.url).status_code == 200  # a dual-stack socket sees ::ffff:127.0.0.1
    assert post(f"http://[::1]:{server.port}").status_code == 403
    assert {row["remote_addr"] for row in server.rows()} == {"::ffff:127.0.0.1"}


def test_trusted_proxy_forwards_a_good_client(server_factory) -> None:
    """Only Microsoft's published ranges are allowed; loopback is the trusted proxy."""
    server = server_factory(pushsync_allowed_networks="", pushsync_trusted_proxies="127.0.0.1")
    assert post(server.url, X_Forwarded_For="40.92.0.1").status_code == 200
    assert post(server.url, X_Forwarded_For="203.0.113.5, 2603:1006::5").status_code == 200
    assert post(server.url, X_Forwarded_For="::ffff:52.100.0.9").status_code == 200
    assert post(server.url, X_Forwarded_For="198.51.100.7").status_code == 403
    assert post(server.url).status_code == 403  # the proxy itself is not Exchange
    # the forged left-most entry of the second request is not what was stored
    assert [row["remote_addr"] for row in server.rows()] == [
        "40.92.0.1",
        "2603:1006::5",
        "::ffff:52.100.0.9",
    ]
    assert "remote_addr=198.51.100.7" in server.logs()


def test_untrusted_peer_with_a_spoofed_header_changes_nothing(server_factory) -> None:
    server = server_factory(pushsync_allowed_networks="", pushsync_trusted_proxies="10.0.0.0/8")
    assert post(server.url, X_Forwarded_For="40.92.0.1").status_code == 403
    assert post(server.url, Forwarded="for=40.92.0.1").status_code == 403
    assert server.rows() == []
    assert "remote_addr=127.0.0.1" in server.logs()
