"""Microsoft's ranges: the packaged snapshot, validation, and `refresh` against a local fake of
the IP and URL web service (the network edge to Microsoft)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from pushsync.errors import ConfigError
from pushsync.web.access.address_filter import AddressFilter
from pushsync.web.access.ipranges import (
    Outcome,
    RangesError,
    Refresher,
    current_path,
    exchange_networks,
    load_ranges,
    snapshot,
)
from pushsync.web.access.networks import NetworkSet

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def feed(*exchange_ips: str, other: tuple[str, ...] = ("13.107.64.0/18",)) -> list[dict[str, Any]]:
    return [
        {"id": 9, "serviceArea": "Exchange", "ips": list(exchange_ips), "tcpPorts": "443"},
        {"id": 11, "serviceArea": "Skype", "ips": list(other)},
        {"id": 3, "serviceArea": "Exchange", "urls": ["r1.res.office365.com"]},
    ]


@dataclass
class FakeEndpointsService:
    """Answers /version/{instance} and /endpoints/{instance} like endpoints.office.com."""

    latest: str = "2026110100"
    endpoints: Any = field(default_factory=lambda: feed("40.92.0.0/15", "2a01:111:f403::/48"))
    status: int = 200
    requests: list[tuple[str, dict[str, list[str]]]] = field(default_factory=list)

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]


@pytest.fixture
def service() -> Iterator[tuple[FakeEndpointsService, str]]:
    fake = FakeEndpointsService()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            fake.requests.append((url.path, parse_qs(url.query)))
            if url.path.startswith("/version/"):
                body: Any = {"instance": url.path.rsplit("/", 1)[1], "latest": fake.latest}
            elif url.path.startswith("/endpoints/"):
                body = fake.endpoints
            else:
                self.send_error(404)
                return
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(fake.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def refresher(service, tmp_path: Path) -> Iterator[Refresher]:
    with httpx.Client(timeout=5) as client:
        yield Refresher(client, tmp_path, "Worldwide", service[1])


def test_packaged_snapshot_is_dated_and_holds_exchange_ranges() -> None:
    ranges = snapshot("Worldwide")
    assert ranges is not None
    assert ranges.latest == "2022072800" and ranges.retrieved_at.startswith("2022-07-29")
    allowed = ranges.network_set()
    for address in ("40.92.0.1", "40.107.1.1", "52.100.0.1", "104.47.0.1", "2a01:111:f400::1"):
        assert address in allowed
    assert "13.107.64.1" not in allowed  # Skype/Teams, not Exchange
    assert snapshot("China") is None


def test_first_refresh_fetches_validates_and_swaps_in(service, refresher, tmp_path) -> None:
    fake, _ = service
    result = refresher.refresh(now=T0)
    assert result.outcome is Outcome.UPDATED and result.version == "2026110100"
    assert fake.paths() == ["/version/Worldwide", "/endpoints/Worldwide"]
    ids = {query["clientrequestid"][0] for _, query in fake.requests}
    assert len(ids) == 1  # one GUID for the installation
    ranges = load_ranges(tmp_path, "Worldwide")
    assert ranges.latest == "2026110100"
    assert "40.92.0.1" in ranges.network_set() and "13.107.64.1" not in ranges.network_set()


def test_version_endpoint_is_polled_at_most_hourly(service, refresher) -> None:
    fake, _ = service
    refresher.refresh(now=T0)
    again = refresher.refresh(now=T0 + timedelta(minutes=59))
    assert again.outcome is Outcome.TOO_SOON
    assert again.next_check == T0 + timedelta(hours=1)
    assert fake.paths() == ["/version/Worldwide", "/endpoints/Worldwide"]


def test_unchanged_version_does_not_fetch_the_list(service, refresher) -> None:
    fake, _ = service
    refresher.refresh(now=T0)
    result = refresher.refresh(now=T0 + timedelta(hours=1))
    assert result.outcome is Outcome.UNCHANGED
    assert fake.paths() == ["/version/Worldwide", "/endpoints/Worldwide", "/version/Worldwide"]
    ids = {query["clientrequestid"][0] for _, query in fake.requests}
    assert len(ids) == 1  # kept across runs


def test_new_version_is_fetched(service, refresher, tmp_path) -> None:
    fake, _ = service
    refresher.refresh(now=T0)
    fake.latest = "2026120100"
    fake.endpoints = feed("104.47.0.0/17", "2603:1006::/40")
    assert refresher.refresh(now=T0 + timedelta(hours=2)).outcome is Outcome.UPDATED
    allowed = load_ranges(tmp_path, "Worldwide").network_set()
    assert "104.47.0.1" in allowed and "40.92.0.1" not in allowed


@pytest.mark.parametrize(
    "bad",
    [
        b"not json",
        {"value": []},
        feed("0.0.0.0/0", "2a01:111:f403::/48"),  # would open the listener to everyone
        feed("40.92.0.1/15", "2a01:111:f403::/48"),  # host bits set
        feed("40.92.0.0/15"),  # no IPv6 at all
        feed("40.92.0.0/15", "banana"),
        [{"serviceArea": "Exchange", "ips": ["40.92.0.0/15"]}],  # no id
    ],
)
def test_invalid_list_keeps_the_last_good_one(service, refresher, tmp_path, bad) -> None:
    fake, _ = service
    refresher.refresh(now=T0)
    good = current_path(tmp_path, "Worldwide").read_bytes()
    fake.latest, fake.endpoints = "2026120100", bad
    with pytest.raises(RangesError):
        refresher.refresh(now=T0 + timedelta(hours=2))
    assert current_path(tmp_path, "Worldwide").read_bytes() == good
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_server_error_and_bad_version_keep_the_snapshot(service, refresher, tmp_path) -> None:
    fake, _ = service
    fake.status = 503
    with pytest.raises(RangesError, match="503"):
        refresher.refresh(now=T0)
    fake.status, fake.latest = 200, "latest!"
    with pytest.raises(RangesError, match="YYYYMMDDNN"):
        refresher.refresh(now=T0 + timedelta(hours=1))
    assert load_ranges(tmp_path, "Worldwide").latest == "2022072800"  # the snapshot


def test_instance_without_snapshot_or_refresh_is_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="ipranges refresh"):
        load_ranges(tmp_path, "USGovDoD")


def test_exchange_networks_deduplicates() -> None:
    networks = exchange_networks(feed("40.92.0.0/15", "40.92.0.0/15", "2a01:111:f403::/48"))
    assert [str(n) for n in networks] == ["40.92.0.0/15", "2a01:111:f403::/48"]


def test_running_filter_picks_up_a_refreshed_list(service, refresher, tmp_path) -> None:
    allowed = AddressFilter(
        NetworkSet.parse(["127.0.0.1"]),
        microsoft_ranges=True,
        state_dir=tmp_path,
        instance="Worldwide",
    )
    assert "52.100.0.1" in allowed and "127.0.0.1" in allowed  # snapshot + operator networks
    assert not allowed.reload_if_changed()
    refresher.refresh(now=T0)  # the fake lists only 40.92.0.0/15 and 2a01:111:f403::/48
    assert allowed.reload_if_changed()
    assert "52.100.0.1" not in allowed and "40.92.0.1" in allowed and "127.0.0.1" in allowed


def test_cli_refresh_against_the_fake_service(service, tmp_path) -> None:
    fake, url = service
    env = {
        "PUSHSYNC_IPRANGES_SERVICE_URL": url,
        "PUSHSYNC_IPRANGES_DIR": str(tmp_path),
        "PATH": "/usr/bin:/bin",
    }
    command = [sys.executable, "-m", "pushsync", "ipranges", "refresh"]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "2026110100" in first.stdout and "swapped in" in first.stdout
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert second.returncode == 0 and "not polled" in second.stdout
    assert fake.paths() == ["/version/Worldwide", "/endpoints/Worldwide"]
    fake.status = 500
    shown = subprocess.run(
        [sys.executable, "-m", "pushsync", "ipranges", "show"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "version: 2026110100" in shown.stdout
