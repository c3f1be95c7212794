"""The public listener sends a response's head and body in one write (web/protocol.py)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from pushsync.web.protocol import OneWriteTransport


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def one_write(cycle: SimpleNamespace) -> tuple[OneWriteTransport, RecordingTransport]:
    inner = RecordingTransport()
    return OneWriteTransport(inner, cycle), inner  # type: ignore[arg-type]


def test_head_and_body_leave_in_one_write() -> None:
    cycle = SimpleNamespace(response_started=False)
    transport, inner = one_write(cycle)
    cycle.response_started = True
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    assert inner.writes == []
    transport.write(b"OK")
    assert inner.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nOK"]


def test_interim_continue_is_not_held() -> None:
    cycle = SimpleNamespace(response_started=False)
    transport, inner = one_write(cycle)
    transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert inner.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]


def test_a_held_head_is_sent_before_close() -> None:
    cycle = SimpleNamespace(response_started=True)
    transport, inner = one_write(cycle)
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.close()
    assert inner.writes == [b"HTTP/1.1 200 OK\r\n\r\n"]
    assert inner.closed


def test_later_body_writes_go_out_as_they_come() -> None:
    cycle = SimpleNamespace(response_started=True)
    transport, inner = one_write(cycle)
    for chunk in (b"head\r\n\r\n", b"a", b"b"):
        transport.write(chunk)
    assert inner.writes == [b"head\r\n\r\na", b"b"]
