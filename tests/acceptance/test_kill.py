"""SIGKILL under load: every notification that was answered OK is in the table afterwards."""

from __future__ import annotations

import asyncio
import threading

import httpx

from tests.acceptance.conftest import EWS_HEADERS, EWS_PATH, ServerProcess

TEMPLATE = (
    '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
    '<m:SendNotification xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" '
    'xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><m:ResponseMessages>'
    '<m:SendNotificationResponseMessage ResponseClass="Success"><m:ResponseCode>NoError'
    "</m:ResponseCode><m:Notification><t:SubscriptionId>SUB-{sender}</t:SubscriptionId>"
    "<t:ModifiedEvent><t:Watermark>WM-{sender}-{n}</t:Watermark>"
    "<t:TimeStamp>2026-11-24T10:00:00Z</t:TimeStamp>"
    '<t:ItemId Id="ITEM-{n}" ChangeKey="CK"/><t:ParentFolderId Id="CAL"/></t:ModifiedEvent>'
    "</m:Notification></m:SendNotificationResponseMessage></m:ResponseMessages>"
    "</m:SendNotification></soap:Body></soap:Envelope>"
)


async def _load(url: str, acked: set[str], stop: asyncio.Event, senders: int = 24) -> None:
    async def sender(client: httpx.AsyncClient, number: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            body = TEMPLATE.format(sender=number, n=n).encode()
            try:
                response = await client.post(EWS_PATH, content=body, headers=EWS_HEADERS)
            except httpx.TransportError:
                return  # the server is gone
            if response.status_code == 200 and b">OK<" in response.content:
                acked.add(f"WM-{number}-{n}")

    limits = httpx.Limits(max_connections=senders)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=5) as client:
        await asyncio.gather(*(sender(client, i) for i in range(senders)))


def test_no_acknowledged_notification_is_lost_on_sigkill(server: ServerProcess) -> None:
    acked: set[str] = set()

    def run_load() -> None:
        async def main() -> None:
            stop = asyncio.Event()  # a safety net; in practice the kill ends every sender
            asyncio.get_running_loop().call_later(20, stop.set)
            await _load(server.url, acked, stop)

        asyncio.run(main())

    loader = threading.Thread(target=run_load)
    loader.start()
    deadline = 200  # wait until the load is well under way, then kill mid-flight
    while len(acked) < 300 and deadline:
        threading.Event().wait(0.05)
        deadline -= 1
    server.kill()
    loader.join(30)

    assert len(acked) >= 300, "the load never got going"
    stored = {row["watermark"] for row in server.rows("SELECT watermark FROM sync_notification")}
    missing = acked - stored
    assert not missing, (
        f"{len(missing)} acknowledged notifications lost, e.g. {sorted(missing)[:3]}"
    )
