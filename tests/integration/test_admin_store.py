"""The admin listener opens its store once and keeps it: /readyz, /metrics and /rooms share one
connector (no pool or thread per request), and a store that could not be opened is tried again."""

from __future__ import annotations

from pathlib import Path

import httpx

from pushsync.admin.app import AdminApp
from pushsync.settings import Settings
from pushsync.store import Connector
from pushsync.store.subscriptions import Subscriptions
from pushsync.web.app import address_filter
from tests.integration.helpers import T0


def admin_app(database_url: str) -> AdminApp:
    settings = Settings(
        database_url=database_url, allow_callbacks_without_token=True, use_microsoft_ranges=False
    )
    return AdminApp(settings, address_filter(settings), None)


async def test_every_request_uses_the_one_store(database_url: str, connector: Connector) -> None:
    await Subscriptions(connector).ensure_rooms(["room-1@example.org"], "ews", T0)
    app = admin_app(database_url)
    seen = []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
        for _ in range(2):
            ready = (await client.get("/readyz")).json()
            assert not [p for p in ready["problems"] if p.startswith("database")]
            seen.append(await app.store())
            assert b"pushsync_room_status_up 1.0" in (await client.get("/metrics")).content
            seen.append(await app.store())
            rooms = (await client.get("/rooms")).json()
            seen.append(await app.store())
    await app.close()
    assert all(store is seen[0] for store in seen)
    assert rooms["rooms"] == 1


async def test_a_store_that_failed_to_open_is_opened_at_a_later_request(tmp_path: Path) -> None:
    blocked = tmp_path / "data"
    blocked.write_text("a file where the database's directory belongs")
    app = admin_app(f"sqlite:///{blocked}/pushsync.db")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
        ready = (await client.get("/readyz")).json()
        assert [p for p in ready["problems"] if p.startswith("database: ")]  # could not open
        blocked.unlink()
        blocked.mkdir()  # the folder is the operator's to make: SQLite does not create it
        ready = (await client.get("/readyz")).json()
    await app.close()
    # opened now: an empty database, so what is missing is the schema
    assert "database schema is not at the latest version" in ready["problems"]
