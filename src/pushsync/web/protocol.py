"""A guard around uvicorn's httptools protocol: the limits uvicorn does not have.

uvicorn has a keep-alive timeout but no header or body read timeout, and httptools puts no
bound on the size of the request head, so one slow or endless client could hold a connection
for ever. This subclass adds, per connection:

- a header timeout, from the connection (or the first byte of a request) to the end of its head;
- a body timeout, from the end of the head to the end of the body;
- a cap on the size of the request line and headers (431);
- a cap on open connections per process, refused at once (503) instead of after the head.

It also sends each response in one write: uvicorn writes the head and the body separately, two
send() calls and often two TCP segments per request (docs/benchmarks.md).

What it refuses before a request exists it logs and counts through `web/errors.py` like every
other rejection. uvicorn is told to use it with `http=guarded_protocol(limits)`.
"""

from __future__ import annotations

import asyncio
import functools
import http
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from pushsync.settings import Settings
from pushsync.web.errors import log_rejection
from pushsync.web.request import BODY_TIMED_OUT


@dataclass(frozen=True, slots=True)
class Limits:
    header_timeout: float
    body_timeout: float
    max_header_bytes: int
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            header_timeout=settings.header_timeout_seconds,
            body_timeout=settings.body_timeout_seconds,
            max_header_bytes=settings.max_header_bytes,
            max_connections=settings.max_connections,
        )


class GuardedProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, limits: Limits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = limits
        self._deadline: float | None = None  # when the head or body must be in, if waiting
        self._expire: Callable[[], None] = self._head_timed_out
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._in_head = True
        self._head_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self._limits.max_connections:
            self._refuse(503, "connection_limit", "too many open connections")
            return
        self._arm(self._limits.header_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # Counted before parsing: while still in the head after this chunk, all of it was head.
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        over = self._in_head and self._head_bytes > self._limits.max_header_bytes
        if over and not self.transport.is_closing():
            self._refuse(431, "headers_too_large", "request head over the size limit")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:  # a new request on a kept-alive connection
            self._arm(self._limits.header_timeout, self._head_timed_out)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        self._arm(self._limits.body_timeout, self._body_timed_out)
        if self._head_size() <= self._limits.max_header_bytes:
            super().on_headers_complete()
            if self.cycle is not None:
                self.cycle.transport = OneWriteTransport(self.transport, self.cycle)
            return
        # A head that arrived in one read: answer through uvicorn's request cycle, as its own
        # concurrency limit does, so the parser state stays consistent.
        app, self.app = self.app, _HeadTooLarge(self._peer())
        try:
            super().on_headers_complete()
        finally:
            self.app = app

    def _head_size(self) -> int:
        return len(self.url) + sum(len(name) + len(value) for name, value in self.headers)

    def on_message_complete(self) -> None:
        self._disarm()
        self._in_head = True
        super().on_message_complete()

    def _arm(self, delay: float, callback: Callable[[], None]) -> None:
        """Set the deadline. A timer is only created when none is due by then: a kept-alive
        connection reuses one timer for many requests instead of creating and cancelling two
        per request; `_check_deadline` follows a later one."""
        self._deadline = self.loop.time() + delay
        self._expire = callback
        if self._timer is not None and self._timer_at <= self._deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._schedule(self._deadline)

    def _disarm(self) -> None:
        self._deadline = None  # a pending timer finds no deadline and lapses

    def _schedule(self, when: float) -> None:
        self._timer_at = when
        self._timer = self.loop.call_at(when, self._check_deadline)

    def _check_deadline(self) -> None:
        self._timer = None
        if self._deadline is None:
            return
        if self.loop.time() < self._deadline:  # moved later since the timer was set
            self._schedule(self._deadline)
            return
        self._deadline = None
        self._expire()

    def _head_timed_out(self) -> None:
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # a pipelined head behind a running request: just drop
            return
        self._refuse(408, "header_timeout", "request head not received in time")

    def _body_timed_out(self) -> None:
        """Let the handler answer 408: it is waiting in `receive` and sees the flag."""
        if self.cycle is None or self.cycle.response_complete:
            self.transport.close()
            return
        self.scope[BODY_TIMED_OUT] = True  # type: ignore[literal-required]
        self.cycle.message_event.set()

    def send_400_response(self, msg: str) -> None:
        log_rejection("bad_http", 400, self._peer(), msg)
        super().send_400_response(msg)

    def _refuse(self, status: int, reason: str, detail: str) -> None:
        log_rejection(reason, status, self._peer(), detail)
        self._disarm()
        body = f"{detail}\n".encode()
        phrase = http.HTTPStatus(status).phrase.encode()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (status, phrase, len(body), body)
        )
        self.transport.close()

    def _peer(self) -> str | None:
        return self.client[0] if self.client else None


class OneWriteTransport(asyncio.Transport):
    """The transport as one request's response cycle sees it: the response head is held back
    and written together with the first body write (or before a close).

    uvicorn writes the head when the app sends `http.response.start`. Anything written before
    that (an interim `100 Continue`) goes out at once.
    """

    def __init__(self, transport: asyncio.Transport, cycle: RequestResponseCycle) -> None:
        super().__init__()
        self._transport = transport
        # The cycle holds this transport: dropped once the head is held, so that a request
        # leaves no reference cycle behind for the garbage collector (+12 MB RSS at peak).
        self._cycle: RequestResponseCycle | None = cycle
        self._head: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._cycle is not None and self._cycle.response_started:
            self._cycle = None
            self._head = bytes(data)
            return
        if self._head is not None:
            data, self._head = self._head + data, None
        self._transport.write(data)

    def close(self) -> None:
        if self._head is not None:
            self._transport.write(self._head)
            self._head = None
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()


class _HeadTooLarge:
    """The ASGI answer to a request whose head is over the limit."""

    def __init__(self, peer: str | None) -> None:
        self._peer = peer

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        log_rejection(_HEAD_REASON, 431, self._peer, _HEAD_DETAIL)
        body = f"{_HEAD_DETAIL}\n".encode()
        headers = [(b"content-length", b"%d" % len(body)), (b"connection", b"close")]
        await send({"type": "http.response.start", "status": 431, "headers": headers})
        await send({"type": "http.response.body", "body": body})


_HEAD_REASON = "headers_too_large"
_HEAD_DETAIL = "request head over the size limit"


def guarded_protocol(limits: Limits) -> Callable[..., GuardedProtocol]:
    """What uvicorn's `http=` takes: a picklable factory, so spawned workers get it too."""
    return functools.partial(GuardedProtocol, limits=limits)
