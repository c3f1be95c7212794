"""A kept-alive connection the server closes just as a request goes out on it.

Servers close idle connections after their own keep-alive timeout (uvicorn's 5 s is httpx's
too), so a request can be sent on a connection the server is closing: it gets no answer
(httpx's RemoteProtocolError). A read is sent again once, on a new connection; a write is
not, since the server may have done it. The server here is a real HTTP/1.1 server on a real
socket that drops the second request of each connection unanswered: what such a race looks
like from the client's side, made certain instead of rare.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from pushsync.errors import ExchangeUnavailable
from pushsync.graph.auth import static_token
from pushsync.graph.client import GraphClient


@dataclass
class DroppingServer:
    """Answers the first request of each connection (keep-alive), drops the second."""

    port: int = 0
    requests: list[tuple[int, str]] = field(default_factory=list)  # (connection, request line)
    _connections: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections += 1
        connection = self._connections
        try:
            for answered in (True, False):
                head = await reader.readuntil(b"\r\n\r\n")
                line = head.split(b"\r\n", 1)[0].decode()
                length = _content_length(head)
                if length:
                    await reader.readexactly(length)
                self.requests.append((connection, line))
                if not answered:
                    return  # closed without a word, as at the end of a keep-alive timeout
                body = json.dumps({"id": "event-1", "expirationDateTime": _later()}).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def _later() -> str:
    return (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
async def dropping() -> AsyncIterator[tuple[DroppingServer, GraphClient]]:
    server = DroppingServer()
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.port = listening.sockets[0].getsockname()[1]
    client = GraphClient(static_token("token"), f"http://127.0.0.1:{server.port}/v1.0")
    try:
        yield server, client
    finally:
        await client.aclose()
        listening.close()
        await listening.wait_closed()


async def test_a_read_on_a_connection_the_server_dropped_is_sent_again_once(dropping) -> None:
    server, client = dropping
    assert await client.event("room-1@contoso.example", "event-1") is not None
    # the kept-alive connection drops the next request: it goes again on a new one
    found = await client.event("room-1@contoso.example", "event-1")
    assert found is not None and found["id"] == "event-1"
    assert [connection for connection, _ in server.requests] == [1, 1, 2]
    assert all(line.startswith("GET ") for _, line in server.requests)


async def test_a_write_on_a_connection_the_server_dropped_is_not_sent_again(dropping) -> None:
    server, client = dropping
    expires = datetime.now(UTC) + timedelta(days=1)
    await client.renew_subscription("subscription-1", expires)
    with pytest.raises(ExchangeUnavailable, match="RemoteProtocolError"):
        await client.renew_subscription("subscription-1", expires)
    assert [line.split()[0] for _, line in server.requests] == ["PATCH", "PATCH"]
    assert [connection for connection, _ in server.requests] == [1, 1]
