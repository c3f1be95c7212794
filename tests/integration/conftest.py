"""Engines for the integration tests: every store test runs on SQLite and on PostgreSQL.

PostgreSQL is the server named by PUSHSYNC_TEST_POSTGRES_URL (default: the one on this
machine). Each test gets its own schema, selected through the connection's search_path, and
drops it afterwards, so tests and engineers sharing the server never see each other's rows.
A missing server is a failure, never a skip: a green run means both engines were tested.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from pushsync.store import Connector, connect
from pushsync.store.migrations import upgrade

POSTGRES_URL_ENV = "PUSHSYNC_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
START_HINT = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"

ENGINES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def with_search_path(url: str, schema: str) -> str:
    """`url` with every connection's search_path set to `schema` (libpq `options`)."""
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = os.environ.get(POSTGRES_URL_ENV, DEFAULT_POSTGRES_URL)
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL at {url} is unreachable ({exc}). Start it ({START_HINT}) or point "
            f"{POSTGRES_URL_ENV} at one; PostgreSQL tests fail rather than skip.",
            pytrace=False,
        )
    return url


@pytest.fixture
def postgres_schemas(postgres_url: str) -> Iterator[Callable[[], str]]:
    """Makes URLs whose connections live in fresh, empty schemas; drops them afterwards."""
    created: list[sql.Identifier] = []

    def new_schema() -> str:
        schema = f"pushsync_test_{uuid.uuid4().hex[:12]}"
        created.append(sql.Identifier(schema))
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE SCHEMA {}").format(created[-1]))
        return with_search_path(postgres_url, schema)

    yield new_schema
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        for name in created:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(name))


@pytest.fixture
def postgres_schema_url(postgres_schemas: Callable[[], str]) -> str:
    """A URL whose connections live in a fresh, empty schema of their own."""
    return postgres_schemas()


@pytest.fixture(params=ENGINES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each engine in turn."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_schema_url"))
    return f"sqlite:///{tmp_path}/pushsync.db"


@pytest.fixture
async def connector(database_url: str) -> AsyncIterator[Connector]:
    """An open connector on a database at the latest schema version."""
    connector = connect(database_url)
    await connector.open()
    await upgrade(connector)
    yield connector
    await connector.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
