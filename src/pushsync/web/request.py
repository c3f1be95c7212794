"""An inbound request as the handlers see it: method, path, headers, and a bounded body."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from pushsync.errors import RejectedRequest
from pushsync.web.asgi import Receive, Scope


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: bytes
    headers: dict[bytes, bytes]
    remote_addr: str | None
    received_at: datetime

    @classmethod
    def from_scope(cls, scope: Scope) -> Request:
        client = scope.get("client")
        return cls(
            method=scope["method"],
            path=scope["path"],
            query=scope.get("query_string", b""),
            headers=dict(scope["headers"]),  # ASGI names are lower-case already
            remote_addr=client[0] if client else None,
            received_at=datetime.now(UTC),
        )

    def header(self, name: bytes) -> str | None:
        value = self.headers.get(name)
        return value.decode("latin-1") if value is not None else None


async def read_body(request: Request, receive: Receive, limit: int) -> bytes:
    """The whole body, refusing more than `limit` bytes whether announced or streamed."""
    length = request.headers.get(b"content-length")
    if length is not None:
        try:
            announced = int(length)
        except ValueError:
            raise RejectedRequest(
                "Content-Length is not a number", status=400, reason="bad_length"
            ) from None
        if announced > limit:
            raise RejectedRequest(
                f"body of {announced} bytes over the {limit} limit", status=413, reason="too_large"
            )
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise RejectedRequest("client went away", status=400, reason="disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RejectedRequest(
                f"body over the {limit} byte limit", status=413, reason="too_large"
            )
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
