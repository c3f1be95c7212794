"""The real `pushsync worker` with Graph rooms Graph will not subscribe: they are polled.

One room's mailbox is still on premises in a hybrid tenant: Graph refuses its subscription
(404 MailboxNotEnabledForRESTAPI) while its calendar can be read. It must converge by polling,
show as "polling" with the reason in `/rooms`, on the status page, in `/metrics` and in
`pushsync subscriptions list`, and, once its mailbox has moved to the cloud, be subscribed at
the manager's next try and stop being polled. Another room is kept from the app by an
application access policy (every call 403 ErrorAccessDenied): its polls fail too, and it is
shown broken with the reason. A third, ordinary room is subscribed and synced throughout.

The simulator's clock runs at real speed from now, as in test_graph_capped_room.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from pushsync.simulator import SimulatorThread, generated_rooms
from pushsync.simulator.graph.api import GRAPH_TOKEN
from tests.acceptance.conftest import ServerProcess, pushsync_command, run_pushsync
from tests.acceptance.simulated_exchange import meeting, running, wait_for
from tests.acceptance.worker_loop import stop_worker

STATE = "polling-client-state"
ROOMS = generated_rooms(3)
ORDINARY, HYBRID, DENIED = (room.email for room in ROOMS)


@pytest.fixture
def rig(server_factory) -> Iterator[tuple[SimulatorThread, ServerProcess, dict[str, str]]]:
    server = server_factory(pushsync_graph_client_state=STATE)
    config: dict[str, Any] = {
        "epoch": datetime.now(UTC),
        "scale": 1,
        "rooms": ROOMS,
        "on_premises_rooms": frozenset({HYBRID}),
        "denied_rooms": frozenset({DENIED}),
    }
    with running(**config) as thread:
        env = {
            **os.environ,
            "PUSHSYNC_DATABASE_URL": server.database_url,
            "PUSHSYNC_PUBLIC_URL": server.url,
            "PUSHSYNC_GRAPH_ROOMS": ",".join(room.email for room in ROOMS),
            "PUSHSYNC_GRAPH_URL": thread.sim.graph_url,
            "PUSHSYNC_GRAPH_TOKEN": GRAPH_TOKEN,
            "PUSHSYNC_GRAPH_CLIENT_STATE": STATE,
            "PUSHSYNC_GRAPH_POLLING_MINUTES": "0.05",  # every 3 seconds
            "PUSHSYNC_MAX_RETRY_AFTER_SECONDS": "2",  # a refused room is asked again this often
            "PUSHSYNC_SUBSCRIPTION_CHECK_SECONDS": "0.5",
            "PUSHSYNC_WORKER_DEBOUNCE_MS": "50",
        }
        yield thread, server, env


def admin(server: ServerProcess, path: str) -> httpx.Response:
    answer = httpx.get(f"http://127.0.0.1:{server.admin_port}{path}", timeout=10)
    assert answer.status_code == 200, answer.text
    return answer


def status_of(server: ServerProcess, mailbox: str) -> dict[str, Any]:
    statuses = admin(server, "/rooms").json()["statuses"]
    [status] = [s for s in statuses if s["mailbox"] == mailbox]
    return dict(status)


def booked(server: ServerProcess, mailbox: str) -> set[str]:
    rows = server.rows("SELECT mailbox, uid FROM reservation")
    return {r["uid"] for r in rows if r["mailbox"] == mailbox}


def active_ids(thread: SimulatorThread, mailbox: str) -> list[str]:
    return [s.id for s in thread.call(thread.sim.graph.webhooks.active, mailbox)]


def test_a_hybrid_room_converges_by_polling_and_a_denied_room_is_shown_broken(rig) -> None:
    thread, server, env = rig
    sim = thread.sim
    log = server.database.with_name("worker.log")
    with log.open("wb") as out:
        worker = subprocess.Popen(
            pushsync_command("worker"), env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_for(lambda: active_ids(thread, ORDINARY), timeout=60)
        start = sim.clock.now() + timedelta(days=1)
        first = meeting("POLLED-1", start)
        thread.call(sim.exchange.book, first, [HYBRID])
        thread.call(sim.exchange.book, meeting("ORDINARY-1", start), [ORDINARY])
        thread.call(sim.exchange.book, meeting("DENIED-1", start), [DENIED])

        # The hybrid room: no subscription, yet its booking arrives, and so do later changes.
        wait_for(lambda: "POLLED-1" in booked(server, HYBRID), timeout=60)
        later = replace(first, start=start + timedelta(hours=2), end=start + timedelta(hours=3))
        thread.call(sim.exchange.update, later)
        thread.call(sim.exchange.book, meeting("POLLED-2", start), [HYBRID])
        wait_for(lambda: booked(server, HYBRID) == {"POLLED-1", "POLLED-2"}, timeout=60)
        wait_for(lambda: _starts(server, "POLLED-1") == [later.start], timeout=60)
        wait_for(lambda: "ORDINARY-1" in booked(server, ORDINARY), timeout=60)
        assert active_ids(thread, HYBRID) == [] and active_ids(thread, DENIED) == []

        hybrid = status_of(server, HYBRID)
        assert hybrid["kind"] == "polling", hybrid
        assert hybrid["polling_reason"] == "on-premises mailbox"
        assert "REST API is not yet supported for this mailbox" in hybrid["problem"]
        assert hybrid["subscription_state"] is None

        # The denied room: its polls are refused too; shown broken, with the reason.
        wait_for(lambda: status_of(server, DENIED)["kind"] == "polling failed", timeout=60)
        denied = status_of(server, DENIED)
        assert denied["polling_reason"] == "access denied"
        assert denied["problem"].startswith("broken: polling fails too")
        assert "ErrorAccessDenied" in denied["problem"]
        assert booked(server, DENIED) == set()

        metrics = admin(server, "/metrics").text
        assert 'pushsync_polling_rooms{reason="on-premises mailbox"} 1.0' in metrics
        assert 'pushsync_polling_rooms{reason="access denied"} 1.0' in metrics
        assert 'pushsync_rooms{status="polling"} 1.0' in metrics
        page = admin(server, "/").text
        assert HYBRID in page and "polling, last read" in page
        wide = {**env, "COLUMNS": "400"}  # one line per room
        listed = run_pushsync("subscriptions", "list", env=wide)
        hybrid_line = next(line for line in listed.splitlines() if HYBRID in line)
        assert "polling" in hybrid_line

        # The mailbox moves to Exchange Online: the next try subscribes it, polling ends.
        thread.call(lambda: _move_to_cloud(sim, HYBRID))
        wait_for(lambda: active_ids(thread, HYBRID), timeout=60)
        wait_for(lambda: status_of(server, HYBRID)["kind"] is None, timeout=60)
        assert status_of(server, HYBRID)["polling_reason"] is None
        thread.call(sim.exchange.book, meeting("PUSHED-3", start), [HYBRID])
        wait_for(lambda: "PUSHED-3" in booked(server, HYBRID), timeout=60)
    finally:
        output = stop_worker(worker, log, server)
    assert worker.returncode == 0, output
    assert "Traceback" not in output


def _starts(server: ServerProcess, uid: str) -> list[datetime]:
    rows = server.rows(f"SELECT start_at FROM reservation WHERE uid = '{uid}'")
    return [_aware(datetime.fromisoformat(r["start_at"])) for r in rows]


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _move_to_cloud(sim: Any, mailbox: str) -> None:
    config = sim.exchange.config
    sim.exchange.config = replace(config, on_premises_rooms=config.on_premises_rooms - {mailbox})
