"""ConvertId, only as far as exchangelib's version probe needs it.

exchangelib sends ConvertId for a made-up id ("DUMMY") to learn the server version from the
ServerVersionInfo header; Exchange answers the id is malformed, and that answer is enough.
https://learn.microsoft.com/exchange/client-developer/web-service-reference/convertid-operation
"""

from __future__ import annotations

from pushsync.ews.namespaces import m
from pushsync.simulator.ews import soap
from pushsync.simulator.ews.soap import EwsRequest
from pushsync.simulator.exchange import Exchange


def handle(exchange: Exchange, request: EwsRequest) -> bytes:
    source_ids = request.element.find(m("SourceIds"))
    count = len(source_ids) if source_ids is not None else 1
    messages = [
        soap.error_message("ConvertId", "ErrorInvalidIdMalformed", "Id is malformed.")
        for _ in range(max(count, 1))
    ]
    return soap.response("ConvertId", request.version, messages)
