"""CPU per request inside a receiver process, without HTTP: `python -m bench.ingest.inprocess`.

Drives pushsync's ASGI app directly (scope, receive, send in memory) with many requests in
flight, against a real durable SQLite database, and prints the process CPU time per request
for: the parse alone, the inbox alone (group commit into SQLite), and the whole app. What the
HTTP server adds on top is the difference to `bench.ingest`'s "CPU us" column.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import uvloop

from bench.ingest.targets import EWS_PATH, REPO, TOKEN

SAMPLE = Path(__file__).with_name("post.lua")
HEAD = (
    '<?xml version="1.0" encoding="utf-8"?><soap:Envelope '
    'xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><m:SendNotification '
    'xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" '
    'xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><m:ResponseMessages>'
    '<m:SendNotificationResponseMessage ResponseClass="Success"><m:ResponseCode>NoError'
    "</m:ResponseCode><m:Notification>"
)
ITEM = "uaCg0pKU3IHs1ns4knNyo1Am0E2Dhe15lf0TScYe9HreFwLkjf7YF9T3ExLezHJIijjefKqm3P/aIouUQmi2aO"
FOLDER = "6+uHt3UevGZoLeKb2AjsiXoD9vMD20ukw0TmMYCjY0tq43NDY19QXcy/QX/ODCasdWcTNkD9sm+er1/8yvAf"


def body(n: int) -> bytes:
    """Same shape as post.lua's bodies: two events, unique watermarks."""

    def event(kind: str, i: int) -> str:
        return (
            f"<t:{kind}Event><t:Watermark>{n}-{i}AQAAAGJb3QAAAAAAAAAAAAA=</t:Watermark>"
            f"<t:TimeStamp>{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}</t:TimeStamp>"
            f'<t:ItemId Id="{ITEM}{n}" ChangeKey="jhNPdQ=="/>'
            f'<t:ParentFolderId Id="{FOLDER}" ChangeKey="n9CYWg=="/></t:{kind}Event>'
        )

    return (
        HEAD
        + f"<t:SubscriptionId>{n % 500}-XQ1Z8uyb4Lzqi/pFrdV0263ErdOiqxf</t:SubscriptionId>"
        + f"<t:PreviousWatermark>{n}-0AQAAAGJb3QAAAAAAAAAAA=</t:PreviousWatermark>"
        + "<t:MoreEvents>false</t:MoreEvents>"
        + event("Created", 1)
        + event("Modified", 2)
        + "</m:Notification></m:SendNotificationResponseMessage></m:ResponseMessages>"
        + "</m:SendNotification></soap:Body></soap:Envelope>"
    ).encode()


def cpu_us(seconds: float, count: int) -> float:
    return 1e6 * seconds / count


def measure_parse(bodies: list[bytes]) -> float:
    from pushsync.ews.send_notification import parse_send_notification

    start = time.process_time()
    for b in bodies:
        parse_send_notification(b, remote_addr="127.0.0.1")
    return cpu_us(time.process_time() - start, len(bodies))


async def measure_inbox(database: Path, bodies: list[bytes], concurrency: int) -> float:
    from pushsync.ews.send_notification import parse_send_notification
    from pushsync.store import connect
    from pushsync.store.inbox import Inbox
    from pushsync.store.migrations import upgrade

    rows = [parse_send_notification(b, remote_addr="127.0.0.1") for b in bodies]
    connector = connect(f"sqlite:///{database}")
    await connector.open()
    await upgrade(connector)
    inbox = Inbox(connector)
    await inbox.start()
    now = datetime.now(UTC)
    queue = iter(rows)

    async def client() -> None:
        for request in queue:
            await inbox.append(request, now)

    start = time.process_time()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    spent = time.process_time() - start
    print(f"   inbox: {inbox.commits} commits, {len(rows) / inbox.commits:.0f} requests each")
    await inbox.stop()
    await connector.close()
    return cpu_us(spent, len(rows))


async def measure_app(database: Path, bodies: list[bytes], concurrency: int) -> float:
    os.environ.update(
        PUSHSYNC_DATABASE_URL=f"sqlite:///{database}",
        PUSHSYNC_CALLBACK_TOKEN=TOKEN,
        PUSHSYNC_ALLOWED_NETWORKS="127.0.0.0/8",
    )
    from pushsync.web.app import create_app

    app = create_app()
    await app.startup()
    path, _, query = EWS_PATH.partition("?")
    headers = [
        (b"content-type", b"text/xml; charset=utf-8"),
        (
            b"soapaction",
            b'"http://schemas.microsoft.com/exchange/services/2006/messages/SendNotification"',
        ),
    ]
    queue = iter(bodies)
    statuses: dict[int, int] = {}

    async def client() -> None:
        for b in queue:
            scope = {
                "type": "http",
                "method": "POST",
                "path": path,
                "query_string": query.encode(),
                "headers": [*headers, (b"content-length", str(len(b)).encode())],
                "client": ("127.0.0.1", 40000),
                "server": ("127.0.0.1", 8080),
                "scheme": "http",
            }

            async def receive(b: bytes = b) -> dict:
                return {"type": "http.request", "body": b, "more_body": False}

            async def send(message: dict) -> None:
                if message["type"] == "http.response.start":
                    statuses[message["status"]] = statuses.get(message["status"], 0) + 1

            await app(scope, receive, send)

    start = time.process_time()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    spent = time.process_time() - start
    print(f"   app: statuses {statuses}, {app.inbox.commits} commits")
    await app.shutdown()
    return cpu_us(spent, len(bodies))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=128)
    args = parser.parse_args()
    base = int(time.time() * 1000)
    (REPO / "var" / "bench").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=REPO / "var" / "bench") as tmp:
        bodies = [body(base + i) for i in range(args.requests)]
        print(f"parse : {measure_parse(bodies):6.1f} us CPU per request")
        inbox = uvloop.run(measure_inbox(Path(tmp) / "inbox.db", bodies, args.concurrency))
        print(f"inbox : {inbox:6.1f} us CPU per request (2 rows, durable group commit)")
        bodies = [body(base + args.requests + i) for i in range(args.requests)]
        app = uvloop.run(measure_app(Path(tmp) / "app.db", bodies, args.concurrency))
        print(f"app   : {app:6.1f} us CPU per request (ASGI app, no HTTP server)")


if __name__ == "__main__":
    main()
