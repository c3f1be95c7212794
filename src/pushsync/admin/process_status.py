"""Which pushsync process is down, and since when: the heartbeats (`store/processes.py`) read
against what the rooms need.

Every protocol some room uses needs a live worker (else its rooms are "not syncing") and a live
subscription manager, and the fleet needs a receiver. A process that is down is named with the
time it went down; one that never ran is named as missing. `/readyz`, `/rooms`, `/metrics`, the
status page and `pushsync status` all read this.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from pushsync.store.connector import Connector
from pushsync.store.processes import ProcessHeartbeats, ProcessStatus

START = {"receiver": "pushsync serve", "worker": "pushsync worker", "manager": "pushsync worker"}


@dataclass(frozen=True)
class Fleet:
    processes: list[ProcessStatus]
    protocols: frozenset[str]  # the protocols some room uses

    def live(self, kind: str, protocol: str | None) -> bool:
        return any(p.alive for p in self._of(kind, protocol))

    def down_since(self, kind: str, protocol: str | None) -> datetime | None:
        """When the last of them went down (None: none was ever recorded, or one is alive)."""
        if self.live(kind, protocol):
            return None
        return max((p.down_since for p in self._of(kind, protocol) if p.down_since), default=None)

    def no_worker(self, protocol: str) -> str | None:
        """Why the rooms of `protocol` are not syncing for want of a worker (None: one lives)."""
        if self.live("worker", protocol):
            return None
        since = self.down_since("worker", protocol)
        if since is None:
            return f"not syncing: no {protocol} worker has run (start `pushsync worker`)"
        return (
            f"not syncing: no live {protocol} worker since {since:%Y-%m-%d %H:%M} UTC "
            "(start `pushsync worker`)"
        )

    def down(self) -> list[ProcessStatus]:
        return [p for p in self.processes if not p.alive]

    def missing(self) -> list[tuple[str, str | None]]:
        """(kind, protocol) the rooms need and no process of which was ever recorded."""
        return [need for need in self.needed() if not self._of(*need)]

    def needed(self) -> list[tuple[str, str | None]]:
        if not self.protocols:
            return []
        per_protocol = [(kind, p) for p in sorted(self.protocols) for kind in ("worker", "manager")]
        return [("receiver", None), *per_protocol]

    def problems(self) -> list[str]:
        """One line per process down or missing, with what to do."""
        lines = [_down_line(p) for p in self.down()]
        for kind, protocol in self.missing():
            what = f"{kind} ({protocol})" if protocol else kind
            lines.append(f"no {what} has run: start `{START[kind]}`")
        return lines

    def _of(self, kind: str, protocol: str | None) -> list[ProcessStatus]:
        return [p for p in self.processes if (p.kind, p.protocol) == (kind, protocol)]


def _down_line(process: ProcessStatus) -> str:
    when = f"{process.down_since:%Y-%m-%d %H:%M:%S} UTC" if process.down_since else "?"
    how = "stopped" if process.stopped_at else "no heartbeat (killed, hung or its host down)"
    return f"{process.name} down since {when}: {how}; start `{START[process.kind]}`"


async def fleet_of_rooms(
    connector: Connector, now: datetime, dead_after: timedelta, configured: Iterable[str] = ()
) -> Fleet:
    """The processes' liveness for the rooms of the room table and the `configured` protocols,
    without reading the rooms themselves."""
    heartbeats = ProcessHeartbeats(connector)
    protocols = await heartbeats.room_protocols() | set(configured)
    return Fleet(await heartbeats.statuses(now, dead_after), frozenset(protocols))


async def fleet(
    connector: Connector, now: datetime, dead_after: timedelta, protocols: Iterable[str]
) -> Fleet:
    """The processes' liveness; `protocols`: those some room uses."""
    processes = await ProcessHeartbeats(connector).statuses(now, dead_after)
    return Fleet(processes, frozenset(protocols))
