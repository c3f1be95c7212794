"""The PostgreSQL connector's own behaviour: connection settings, errors, recovery."""

from __future__ import annotations

import pytest
from psycopg.conninfo import conninfo_to_dict

from pushsync.errors import ConfigError, StorageError
from pushsync.store import connect
from pushsync.store.postgresql import postgresql_conninfo
from tests.integration.receiver import TcpProxy, through

pytestmark = pytest.mark.postgres


def test_bounded_network_timeouts_unless_the_url_names_its_own() -> None:
    defaults = conninfo_to_dict(postgresql_conninfo("postgres://u@db.example:5433/rooms"))
    own = conninfo_to_dict(postgresql_conninfo("postgresql://u@db/rooms?connect_timeout=30"))

    assert (defaults["host"], defaults["port"], defaults["dbname"]) == (
        "db.example",
        "5433",
        "rooms",
    )
    assert defaults["connect_timeout"] == "3"
    assert defaults["tcp_user_timeout"] == "10000"
    assert own["connect_timeout"] == "30"


def test_a_malformed_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        postgresql_conninfo("postgresql://u@db/rooms?no_such_option=1")


async def test_sessions_fail_while_the_server_is_away_and_work_again_after(
    postgres_schema_url: str,
) -> None:
    proxy = TcpProxy("127.0.0.1", int(conninfo_to_dict(postgres_schema_url).get("port", 5432)))
    proxy.start()
    connector = connect(through(postgres_schema_url, proxy.port))
    await connector.open()
    try:
        async with connector.session() as session:
            await session.execute("schema_version_table")
        proxy.cut()
        with pytest.raises(StorageError):
            async with connector.session() as session:
                await session.fetch_all("applied_versions")
        proxy.restore()
        async with connector.session() as session:
            assert await session.fetch_all("applied_versions") == []
    finally:
        await connector.close()
        proxy.close()
