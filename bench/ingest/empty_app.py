"""The ceiling: an ASGI app that reads the body and answers the OK envelope, doing nothing else.

Served by the same stack as pushsync (uvicorn + httptools + uvloop, same worker count), so the
gap between this and pushsync is what parsing and durable storage cost.
"""

from __future__ import annotations

from pushsync.ews.send_notification_result import ANSWERS, SubscriptionStatus

_OK = ANSWERS[SubscriptionStatus.OK]
_HEADERS = [(b"content-type", b"text/xml; charset=utf-8"), (b"content-length", b"%d" % len(_OK))]


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _OK})


async def rsgi_app(scope, protocol):
    """The same for granian's RSGI interface (bench/ingest/servers.py): read the body, answer."""
    await protocol()
    protocol.response_bytes(200, _RSGI_HEADERS, _OK)


_RSGI_HEADERS = [(name.decode(), value.decode()) for name, value in _HEADERS]
