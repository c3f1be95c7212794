"""Fixtures shared by every test layer: corpus paths, a real SQLite database, a real server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pushsync.store import Connector, connect
from pushsync.store.migrations import upgrade

FIXTURES = Path(__file__).parent / "fixtures"
EWS_CORPUS = FIXTURES / "ews"
GRAPH_CORPUS = FIXTURES / "graph"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/pushsync.db"


@pytest.fixture
async def sqlite_connector(sqlite_url: str) -> AsyncIterator[Connector]:
    connector = connect(sqlite_url)
    await connector.open()
    await upgrade(connector)
    yield connector
    await connector.close()
