"""The status page and a room's page in a real headless browser: Debian's chromium
(/usr/bin/chromium, installed by .ci/run with apt-get), driven by Playwright, which never
downloads a browser of its own here.

A real `pushsync serve` (public and admin listener) and a real `pushsync worker` run against
the Exchange simulator with three rooms and one room that Exchange does not know (its
Subscribe fails with ErrorNonExistentMailbox: the failing room). The test reads the page as an
operator does: the charts are drawn from the worker's samples, the failing room is listed with
since when and what to do, the page reloads itself and keeps the scroll position, and "Resync
now" on a room's page queues a resync that the worker then runs. Then the worker is killed
(SIGKILL, no goodbye): the page names it down since its last heartbeat, and every room "not
syncing" for want of a worker.

Screenshots are kept as test artifacts in test-artifacts/screenshots/ (at the repository's
root, ignored by git), one PNG per page looked at.
"""

from __future__ import annotations

import signal
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from pushsync.simulator import generated_rooms
from tests.acceptance.conftest import ServerProcess
from tests.acceptance.simulated_exchange import meeting, running, wait_for
from tests.acceptance.sync_loop import sync_settings
from tests.acceptance.worker_loop import worker_process

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
GHOST = "ghost-room@contoso.example"  # configured, but Exchange has no such mailbox
# every process judges liveness alike: the page is drawn by `pushsync serve`, so it is told too
LIVENESS = {"process_heartbeat_seconds": 1.0, "process_dead_after_seconds": 4.0}


@pytest.fixture
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "install Debian's chromium: apt-get install -y chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            yield browser
        finally:
            browser.close()


def _query(server: ServerProcess, sql: str) -> list[sqlite3.Row]:
    try:
        return server.rows(sql)
    except sqlite3.OperationalError:  # the database is being created or migrated
        return []


def _settled(server: ServerProcess, rooms: list[str]) -> bool:
    synced = _query(server, "SELECT mailbox FROM room WHERE last_synced_at IS NOT NULL")
    noted = _query(server, f"SELECT 1 FROM room_out_of_sync WHERE mailbox = '{GHOST}'")
    return {row["mailbox"] for row in synced} >= set(rooms) and bool(noted)


def _worked(server: ServerProcess) -> bool:
    rows = _query(
        server,
        "SELECT sum(worked) AS worked, max(lag_p99_seconds) AS lag, sum(received) AS received, "
        "sum(calls) AS calls FROM fleet_sample",
    )
    return bool(rows) and all(rows[0][c] for c in ("worked", "lag", "received", "calls"))


def _shot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000  # a page was drawn, not a blank
    return path


def test_the_status_page_and_a_room_page_in_a_real_browser(
    server_factory, tmp_path: Path, browser: Browser
) -> None:
    server = server_factory(**{f"pushsync_{name}": str(value) for name, value in LIVENESS.items()})
    admin = f"http://127.0.0.1:{server.admin_port}"
    rooms = generated_rooms(3)
    good = [room.email for room in rooms]
    epoch = datetime.now(UTC).replace(microsecond=0)
    with running(rooms=rooms, scale=1.0, epoch=epoch) as thread:
        sim = thread.sim
        base = epoch.replace(hour=9, minute=0, second=0) + timedelta(days=2)
        thread.call(sim.exchange.book, meeting("FIRST", base), [good[0]])
        settings = sync_settings(
            server,
            thread,
            rooms=[*good, GHOST],
            status_sample_seconds=1.0,
            **LIVENESS,
        )
        worker = worker_process(settings, tmp_path / "worker.log")
        try:
            wait_for(lambda: _settled(server, good), timeout=90)
            for n in range(6):  # notifications to work off: the charts get lag and counts
                at = base + timedelta(hours=n + 1)
                thread.call(sim.exchange.book, meeting(f"M{n}", at), [good[n % 3]])
            wait_for(lambda: _worked(server), timeout=60)

            page = browser.new_page(viewport={"width": 1280, "height": 720})
            _status_page(page, admin)
            _auto_refresh(page)
            _room_page_and_resync(page, admin, server, good[0])
            _failing_room_page(page, admin)
            _refused_requests(page, admin, server, good[0])

            worker.send_signal(signal.SIGKILL)
            worker.wait(20)
            _dead_worker(page, admin)
        finally:
            worker.terminate()
            worker.wait(20)


def _status_page(page: Page, admin: str) -> None:
    page.goto(admin + "/")
    expect(page.locator("header h1")).to_have_text("pushsync: 3 of 4 rooms in sync")
    charts = page.locator("figure.chart")
    expect(charts).to_have_count(5)
    titles = charts.locator("figcaption").all_inner_texts()
    assert titles == [
        "Notifications per minute",
        "Lag, received to applied",
        "Rooms out of sync",
        "Calls to Exchange / Graph per minute",
        "Throttling (back-offs per minute)",
    ]
    for index in range(4):  # drawn from samples; the throttling chart may only show zeros
        svg = charts.nth(index).locator("svg")
        assert int(svg.get_attribute("data-points") or 0) > 0, titles[index]
        assert svg.locator(".series").count() > 0, titles[index]
        box = svg.bounding_box()
        assert box is not None and box["width"] > 200 and box["height"] > 80
    out_of_sync = charts.nth(2).locator(".legend b").inner_text()
    assert out_of_sync == "1", "the failing room is counted"
    ghost = page.locator(f'#problem-rooms tr[data-room="{GHOST}"]')
    expect(ghost).to_have_count(1)
    cells = ghost.locator("td").all_inner_texts()
    assert "ErrorNonExistentMailbox" in cells[1]
    assert "UTC" in cells[2] and "min" in cells[2], "since when it is out of sync"
    assert "PUSHSYNC_ROOMS" in cells[3], "what to do about it"
    expect(page.locator("#processes")).to_be_visible()
    _shot(page, "status-page")


def _auto_refresh(page: Page) -> None:
    """The page reloads itself (every 30 s) and comes back where the operator had scrolled."""
    page.set_viewport_size({"width": 1280, "height": 400})  # so that the page can scroll
    page.evaluate("window.scrollTo(0, 250); window.pushsyncMarker = 1")
    assert page.evaluate("window.scrollY") == 250
    page.wait_for_function("window.pushsyncMarker === undefined", timeout=60_000)
    page.wait_for_load_state("load")
    page.wait_for_function("window.scrollY === 250", timeout=10_000)
    page.set_viewport_size({"width": 1280, "height": 720})


def _room_page_and_resync(page: Page, admin: str, server: ServerProcess, room: str) -> None:
    page.goto(admin + "/")
    page.goto(admin + f"/rooms/{room}")
    expect(page.locator("header h1")).to_have_text(room)
    expect(page.locator("#subscriptions tr")).not_to_have_count(0)
    assert "active" in page.locator("#subscriptions").inner_text()
    expect(page.locator("#notifications tr")).not_to_have_count(0)
    expect(page.locator("#changes tr")).not_to_have_count(0)
    _shot(page, "room-page")

    before = _last_synced(server, room)
    page.get_by_role("button", name="Resync now").click()
    page.wait_for_url(f"**/rooms/{room}?queued=1")
    # queued, or already done if the worker was quicker than the redirect
    expect(page.locator("#resync-queued, #resync-done")).to_be_visible()
    _shot(page, "room-page-resync-queued")
    wait_for(lambda: _last_synced(server, room) > before, timeout=60)  # the worker ran it
    page.reload()
    expect(page.locator("#resync-done")).to_be_visible()
    facts = page.locator("#facts").inner_text()
    assert "resync waiting\tno" in facts
    assert f"{_last_synced(server, room):%Y-%m-%d %H:%M:%S}" in facts
    _shot(page, "room-page-resync-done")


def _failing_room_page(page: Page, admin: str) -> None:
    page.goto(admin + "/")
    page.locator(f'#problem-rooms tr[data-room="{GHOST}"] a').click()
    expect(page.locator("header h1")).to_have_text(GHOST)
    facts = page.locator("#facts").inner_text()
    assert "no subscription" in facts and "ErrorNonExistentMailbox" in facts
    _shot(page, "room-page-failing")
    response = page.goto(admin + "/rooms/nobody@contoso.example")
    assert response is not None and response.status == 404
    expect(page.locator("header h1")).to_have_text("No such room")
    _shot(page, "room-page-unknown")


def _refused_requests(page: Page, admin: str, server: ServerProcess, room: str) -> None:
    """Another site cannot make the browser ask for a resync; a form without the page's token
    is refused too; nothing is queued."""
    page.goto(admin + f"/rooms/{room}")
    token = page.locator("#resync input[name=token]").get_attribute("value")
    url = admin + f"/rooms/{room}/resync"
    cross = httpx.post(
        url, data={"token": token}, headers={"Origin": "http://evil.example"}, timeout=10
    )
    assert cross.status_code == 403 and "Origin" in cross.text
    fetched = httpx.post(
        url, data={"token": token}, headers={"Sec-Fetch-Site": "cross-site"}, timeout=10
    )
    assert fetched.status_code == 403
    tokenless = httpx.post(url, data={"token": "x"}, timeout=10)
    assert tokenless.status_code == 403
    unknown = httpx.post(admin + "/rooms/nobody@contoso.example/resync", data={}, timeout=10)
    assert unknown.status_code == 404
    (row,) = server.rows(f"SELECT needs_resync FROM room WHERE mailbox = '{room}'")
    assert not row["needs_resync"]


def _dead_worker(page: Page, admin: str) -> None:
    def named_down() -> bool:  # the worker's and its manager's rows go stale one by one
        page.goto(admin + "/")
        down = page.locator("#processes-down")
        return (
            down.count() > 0
            and "worker" in down.inner_text()
            and "0 of 4" in page.locator("header h1").inner_text()
        )

    wait_for(named_down, timeout=60)
    down = page.locator("#processes-down").inner_text()
    assert "worker" in down and "down since" in down and "no heartbeat" in down
    expect(page.locator("header h1")).to_contain_text("0 of 4 rooms in sync")
    rows = page.locator("#problem-rooms tr[data-room]")
    expect(rows).to_have_count(4)
    first = rows.first.locator("td").all_inner_texts()
    assert "no live ews worker since" in first[1]
    assert "UTC" in first[2], "since when: the worker's death"
    assert "pushsync worker" in first[3]
    _shot(page, "status-page-worker-down")


def _last_synced(server: ServerProcess, room: str) -> datetime:
    (row,) = server.rows(f"SELECT last_synced_at FROM room WHERE mailbox = '{room}'")
    return datetime.fromisoformat(row["last_synced_at"])
