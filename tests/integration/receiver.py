"""Real `pushsync serve` processes on any database URL, a client that retries like Exchange,
and a TCP proxy the tests cut to simulate losing the database."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

from tests.integration.conftest import free_port

CALLBACK_TOKEN = "integration-test-token"
EWS_PATH = f"/Webservices/SyncNotification.svc?token={CALLBACK_TOKEN}"
EWS_HEADERS = {
    "Content-Type": "text/xml; charset=utf-8",
    "SOAPAction": '"http://schemas.microsoft.com/exchange/services/2006/messages/SendNotification"',
}
TEMPLATE = (
    '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
    '<m:SendNotification xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" '
    'xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><m:ResponseMessages>'
    '<m:SendNotificationResponseMessage ResponseClass="Success"><m:ResponseCode>NoError'
    "</m:ResponseCode><m:Notification><t:SubscriptionId>SUB-{sender}</t:SubscriptionId>"
    "<t:ModifiedEvent><t:Watermark>{watermark}</t:Watermark>"
    "<t:TimeStamp>2026-11-24T10:00:00Z</t:TimeStamp>"
    '<t:ItemId Id="ITEM-{n}" ChangeKey="CK"/><t:ParentFolderId Id="CAL"/></t:ModifiedEvent>'
    "</m:Notification></m:SendNotificationResponseMessage></m:ResponseMessages>"
    "</m:SendNotification></soap:Body></soap:Envelope>"
)


@dataclass
class Receiver:
    """One `pushsync serve` process; its log goes to `log_dir`."""

    database_url: str
    log_dir: Path
    port: int = field(default_factory=free_port)
    admin_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.log_dir / f"receiver-{self.port}.log"

    def start(self) -> None:
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        env = os.environ | {
            "PUSHSYNC_DATABASE_URL": self.database_url,
            "PUSHSYNC_HOST": "127.0.0.1",
            "PUSHSYNC_PORT": str(self.port),
            "PUSHSYNC_ADMIN_PORT": str(self.admin_port),
            "PUSHSYNC_ALLOWED_NETWORKS": "127.0.0.0/8",
            "PUSHSYNC_CALLBACK_TOKEN": CALLBACK_TOKEN,
        }
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pushsync", "serve"], env=env, stdout=log, stderr=log
            )

    def wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"receiver exited: {self.log.read_text()}")
            try:
                httpx.get(self.url + "/", timeout=0.5)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError(f"receiver did not come up: {self.log.read_text()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


@dataclass(frozen=True)
class Answer:
    watermark: str
    status: int
    ok: bool
    sent_at: float
    answered_at: float


async def deliver(
    client: httpx.AsyncClient, url: str, sender: int, n: int, answers: list[Answer]
) -> None:
    """Post one notification until it is answered OK, as Exchange retries a failed delivery."""
    watermark = f"WM-{sender}-{n}"
    body = TEMPLATE.format(sender=sender, n=n, watermark=watermark).encode()
    while True:
        sent_at = time.monotonic()
        try:
            response = await client.post(url + EWS_PATH, content=body, headers=EWS_HEADERS)
            status, ok = response.status_code, b">OK<" in response.content
        except httpx.TransportError:
            status, ok = 0, False
        answers.append(Answer(watermark, status, ok and status == 200, sent_at, time.monotonic()))
        if ok and status == 200:
            return
        await asyncio.sleep(0.05)


async def send_all(urls: list[str], senders: int, each: int, answers: list[Answer]) -> None:
    """`senders` concurrent senders, each delivering `each` notifications, spread over `urls`."""

    async def sender(client: httpx.AsyncClient, number: int) -> None:
        for n in range(each):
            await deliver(client, urls[(number + n) % len(urls)], number, n, answers)

    limits = httpx.Limits(max_connections=senders)
    async with httpx.AsyncClient(limits=limits, timeout=15) as client:
        await asyncio.gather(*(sender(client, i) for i in range(senders)))


class TcpProxy:
    """Forwards a local port to the database; `cut()` drops every connection and stops
    listening (as a lost network path or a stopped server looks to the receiver), `restore()`
    listens again on the same port. Runs its own event loop in a thread."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.WriteTransport] = set()

    def start(self) -> None:
        self._thread.start()
        self.restore()

    def restore(self) -> None:
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)

    def cut(self) -> None:
        asyncio.run_coroutine_threadsafe(self._cut(), self._loop).result(10)

    def close(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for transport in list(self._transports):
            transport.abort()
        self._transports.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._transports |= {writer.transport, up_writer.transport}
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.transport.abort()


def through(url: str, port: int) -> str:
    """`url` with its host and port replaced by the proxy's."""
    parts = urlsplit(url)
    user = parts.netloc.rpartition("@")[0]
    netloc = f"{user}@127.0.0.1:{port}" if user else f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc))
