"""An inbound request as the handlers see it: method, path, headers, and a bounded body."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from pushsync.errors import (
    LengthRequired,
    PayloadTooLarge,
    RejectedRequest,
    RequestTimeout,
)
from pushsync.web.access.client_address import ClientAddress
from pushsync.web.asgi import Receive, Scope

# Set in the scope by the connection guard (web/protocol.py) when the body read timeout fires.
BODY_TIMED_OUT = "pushsync.body_timed_out"


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: bytes
    headers: dict[bytes, bytes]
    remote_addr: str | None  # the client: the TCP peer, or who a trusted proxy forwarded
    received_at: datetime
    scope: Scope

    @classmethod
    def from_scope(cls, scope: Scope, clients: ClientAddress | None = None) -> Request:
        client = scope.get("client")
        peer = client[0] if client else None
        raw_headers = scope["headers"]
        return cls(
            method=scope["method"],
            path=scope["path"],
            query=scope.get("query_string", b""),
            headers=dict(raw_headers),  # ASGI names are lower-case already
            remote_addr=clients.resolve(peer, raw_headers) if clients else peer,
            received_at=datetime.now(UTC),
            scope=scope,
        )

    def header(self, name: bytes) -> str | None:
        value = self.headers.get(name)
        return value.decode("latin-1") if value is not None else None


def announced_length(request: Request, limit: int) -> int | None:
    """Content-Length if given (413 over `limit`); None for a chunked body; 411 otherwise."""
    length = request.headers.get(b"content-length")
    if length is None:
        if b"chunked" in request.headers.get(b"transfer-encoding", b"").lower():
            return None  # bounded while it streams in
        raise LengthRequired("a Content-Length is required")
    if not length.isdigit():
        raise RejectedRequest("Content-Length is not a number", status=400, reason="bad_length")
    announced = int(length)
    if announced > limit:
        raise PayloadTooLarge(f"body of {announced} bytes over the {limit} limit")
    return announced


async def read_body(request: Request, receive: Receive, limit: int) -> bytes:
    """The whole body, refusing more than `limit` bytes whether announced or streamed."""
    announced_length(request, limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise RejectedRequest("client went away", status=400, reason="disconnected")
        if request.scope.get(BODY_TIMED_OUT):
            raise RequestTimeout("body not received in time", reason="body_timeout")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body over the {limit} byte limit")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
