"""Microsoft 365's published Exchange address ranges: the packaged snapshot and `ipranges refresh`.

The format is that of the Microsoft 365 IP and URL web service
(https://learn.microsoft.com/microsoft-365/enterprise/microsoft-365-ip-web-service):
`GET {service}/version/{instance}` answers `{"instance": …, "latest": "YYYYMMDDNN"}` and may be
polled at most hourly; `GET {service}/endpoints/{instance}` answers the endpoint sets and is
fetched only when `latest` changed. Both carry `clientrequestid`, one GUID per installation.

A ranges file (the snapshot in `data/`, or the last good refresh in the state directory) is
`{"instance", "latest", "retrieved_at", "source", "endpoints": [endpoint sets]}`. A refresh
validates the new list before it replaces the current file with an atomic rename, so a bad
or partial download never replaces the last good list.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pushsync.errors import ConfigError, PushsyncError
from pushsync.web.access.networks import Network, NetworkSet, parse_network

if TYPE_CHECKING:
    # Only `Refresher` (the CLI's `ipranges refresh`) talks HTTP. The receiver imports this
    # module to read the stored list, and httpx at import cost each worker 7 MB (its CLI pulls
    # in rich and click): the receiver's RSS target is 120 MB for two workers.
    import httpx

INSTANCES = ("Worldwide", "USGovDoD", "USGovGCCHigh", "China")
SERVICE_AREA = "Exchange"
MIN_CHECK_INTERVAL = timedelta(hours=1)  # Microsoft asks for no more than one poll an hour
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
MAX_NETWORKS = 20_000
# A feed entry broader than these would open the listener to a large part of the internet; the
# broadest Exchange prefixes Microsoft has published are /13 (IPv4) and /36 (IPv6).
MIN_PREFIX = {4: 8, 6: 16}
_VERSION = re.compile(r"^\d{10}$")


class RangesError(PushsyncError):
    """A ranges list or a web service answer failed validation; nothing was replaced."""


@dataclass(frozen=True, slots=True)
class Ranges:
    instance: str
    latest: str
    retrieved_at: str
    source: str
    networks: tuple[Network, ...]

    def network_set(self) -> NetworkSet:
        return NetworkSet(self.networks)

    def describe(self) -> dict[str, Any]:
        v4 = sum(1 for n in self.networks if n.version == 4)
        return {
            "instance": self.instance,
            "version": self.latest,
            "retrieved_at": self.retrieved_at,
            "source": self.source,
            "ipv4_networks": v4,
            "ipv6_networks": len(self.networks) - v4,
        }


def exchange_networks(endpoints: Any) -> tuple[Network, ...]:
    """The validated, de-duplicated networks of the Exchange endpoint sets in a feed."""
    if not isinstance(endpoints, list):
        raise RangesError("endpoints answer is not a JSON list")
    networks: dict[Network, None] = {}
    for entry in endpoints:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), int):
            raise RangesError("an endpoint set is not an object with an integer id")
        if entry.get("serviceArea") != SERVICE_AREA:
            continue
        ips = entry.get("ips", [])
        if not isinstance(ips, list):
            raise RangesError(f"endpoint set {entry['id']}: ips is not a list")
        for text in ips:
            networks[_checked_network(text, entry["id"])] = None
    _check_coverage(networks)
    return tuple(networks)


def _checked_network(text: Any, entry_id: int) -> Network:
    if not isinstance(text, str):
        raise RangesError(f"endpoint set {entry_id}: {text!r} is not a string")
    try:
        network = parse_network(text)
    except ValueError as exc:
        raise RangesError(f"endpoint set {entry_id}: {exc}") from None
    if network.prefixlen < MIN_PREFIX[network.version]:
        raise RangesError(f"endpoint set {entry_id}: {text} is implausibly broad")
    return network


def _check_coverage(networks: dict[Network, None]) -> None:
    if len(networks) > MAX_NETWORKS:
        raise RangesError(f"{len(networks)} networks, more than {MAX_NETWORKS}")
    versions = {n.version for n in networks}
    if versions != {4, 6}:
        raise RangesError("the Exchange service area must list both IPv4 and IPv6 networks")


def parse_ranges_file(text: str | bytes) -> Ranges:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise RangesError(f"ranges file is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RangesError("ranges file is not a JSON object")
    instance, latest = data.get("instance"), data.get("latest")
    if instance not in INSTANCES or not isinstance(latest, str) or not _VERSION.match(latest):
        raise RangesError("ranges file lacks a known instance or a YYYYMMDDNN version")
    return Ranges(
        instance=instance,
        latest=latest,
        retrieved_at=str(data.get("retrieved_at", "")),
        source=str(data.get("source", "")),
        networks=exchange_networks(data.get("endpoints")),
    )


def snapshot(instance: str) -> Ranges | None:
    """The dated list shipped inside the package, or None for an instance without one."""
    resource = resources.files("pushsync.web.access").joinpath(f"data/exchange-{instance}.json")
    if not resource.is_file():
        return None
    return parse_ranges_file(resource.read_bytes())


def current_path(state_dir: Path, instance: str) -> Path:
    return state_dir / f"exchange-{instance}.json"


def load_ranges(state_dir: Path, instance: str) -> Ranges:
    """The last good refreshed list if there is one, else the packaged snapshot."""
    path = current_path(state_dir, instance)
    if path.is_file():
        try:
            return parse_ranges_file(path.read_bytes())
        except RangesError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    packaged = snapshot(instance)
    if packaged is None:
        raise ConfigError(
            f"no ranges for instance {instance}: run `pushsync ipranges refresh` first"
        )
    return packaged


class Outcome(Enum):
    TOO_SOON = "checked less than an hour ago; not polled"
    UNCHANGED = "version unchanged; list not fetched"
    UPDATED = "new version fetched, validated and swapped in"


@dataclass(frozen=True, slots=True)
class RefreshResult:
    outcome: Outcome
    version: str | None
    next_check: datetime | None = None


class Refresher:
    """One installation's refresh state: its client request id and when it last polled."""

    def __init__(self, client: httpx.Client, state_dir: Path, instance: str, service: str):
        if instance not in INSTANCES:
            raise ConfigError(f"unknown Microsoft 365 instance {instance!r}")
        self._client = client
        self._dir = state_dir
        self._instance = instance
        self._service = service.rstrip("/")

    def refresh(self, now: datetime | None = None) -> RefreshResult:
        now = now or datetime.now(UTC)
        self._dir.mkdir(parents=True, exist_ok=True)
        state = self._read_state()
        last = state.get("last_checked")
        if last and now < datetime.fromisoformat(last) + MIN_CHECK_INTERVAL:
            next_check = datetime.fromisoformat(last) + MIN_CHECK_INTERVAL
            return RefreshResult(Outcome.TOO_SOON, self._current_version(), next_check)
        latest = self._latest_version(state["client_request_id"])
        state["last_checked"] = now.isoformat()
        self._write_state(state)
        if latest == self._current_version():
            return RefreshResult(Outcome.UNCHANGED, latest)
        endpoints = self._get_json(f"endpoints/{self._instance}", state["client_request_id"])
        exchange_networks(endpoints)  # validate before anything is written
        document = {
            "instance": self._instance,
            "latest": latest,
            "retrieved_at": now.isoformat(),
            "source": f"{self._service}/endpoints/{self._instance}",
            "endpoints": [e for e in endpoints if e.get("serviceArea") == SERVICE_AREA],
        }
        _atomic_write(current_path(self._dir, self._instance), json.dumps(document, indent=1))
        return RefreshResult(Outcome.UPDATED, latest)

    def _latest_version(self, client_request_id: str) -> str:
        answer = self._get_json(f"version/{self._instance}", client_request_id)
        latest = answer.get("latest") if isinstance(answer, dict) else None
        if not isinstance(latest, str) or not _VERSION.match(latest):
            raise RangesError(f"version answer has no YYYYMMDDNN 'latest': {answer!r:.200}")
        return latest

    def _get_json(self, path: str, client_request_id: str) -> Any:
        import httpx  # already loaded by whoever made the client (see the import note above)

        url = f"{self._service}/{path}"
        try:
            response = self._client.get(url, params={"clientrequestid": client_request_id})
        except httpx.HTTPError as exc:
            raise RangesError(f"{url}: {exc}") from None
        if response.status_code != 200:
            raise RangesError(f"{url}: HTTP {response.status_code}")
        if len(response.content) > MAX_RESPONSE_BYTES:
            raise RangesError(f"{url}: answer larger than {MAX_RESPONSE_BYTES} bytes")
        try:
            return response.json()
        except ValueError as exc:
            raise RangesError(f"{url}: not JSON: {exc}") from None

    def _current_version(self) -> str | None:
        path = current_path(self._dir, self._instance)
        if path.is_file():
            try:
                return parse_ranges_file(path.read_bytes()).latest
            except RangesError:
                return None  # a damaged current file is replaced by the next good fetch
        return None

    def _read_state(self) -> dict[str, Any]:
        path = self._dir / "refresh-state.json"
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            state = {}
        if not isinstance(state, dict):
            state = {}
        if not isinstance(state.get("client_request_id"), str):
            state = {"client_request_id": str(uuid.uuid4())}
        return state

    def _write_state(self, state: dict[str, Any]) -> None:
        _atomic_write(self._dir / "refresh-state.json", json.dumps(state, indent=1))


def _atomic_write(path: Path, text: str) -> None:
    """Write beside the target, fsync, then rename over it: readers see old or new, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        handle.write(text + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
