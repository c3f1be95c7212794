"""GetRoomLists and GetRooms: the organisation's room lists, and the rooms in one of them.

https://learn.microsoft.com/exchange/client-developer/web-service-reference/getroomlists-operation
https://learn.microsoft.com/exchange/client-developer/web-service-reference/getrooms-operation

Unlike the item operations, both answer with one `m:{Operation}Response` element carrying
ResponseClass itself, no `m:ResponseMessages` wrapper. A room list is a `t:Address` (MailboxType
PublicDL); a room is `t:Room/t:Id` (MailboxType Mailbox). An address that is no room list is
answered ErrorNameResolutionNoResults, as Exchange does. Neither needs impersonation.
"""

from __future__ import annotations

from lxml import etree

from pushsync.ews.namespaces import m, t
from pushsync.simulator.ews import soap
from pushsync.simulator.ews.soap import EwsRequest, sub
from pushsync.simulator.exchange import Exchange


def get_room_lists(exchange: Exchange, request: EwsRequest) -> bytes:
    answer = _response("GetRoomLists", "Success")
    sub(answer, m("ResponseCode"), "NoError")
    lists = sub(answer, m("RoomLists"))
    for room_list in exchange.config.room_lists:
        _address(sub(lists, t("Address")), room_list.name, room_list.email, "PublicDL")
    return soap.envelope(answer, request.version)


def get_rooms(exchange: Exchange, request: EwsRequest) -> bytes:
    wanted = (request.element.findtext(f"{m('RoomList')}/{t('EmailAddress')}") or "").strip()
    found = [r for r in exchange.config.room_lists if r.email.lower() == wanted.lower()]
    if not found:
        answer = _response("GetRooms", "Error")
        sub(answer, m("MessageText"), "No results were found.")
        sub(answer, m("ResponseCode"), "ErrorNameResolutionNoResults")
        sub(answer, m("DescriptiveLinkKey"), "0")
        return soap.envelope(answer, request.version)
    answer = _response("GetRooms", "Success")
    sub(answer, m("ResponseCode"), "NoError")
    rooms = sub(answer, m("Rooms"))
    for room in exchange.config.rooms:
        if found[0].holds(room.email):
            _address(sub(sub(rooms, t("Room")), t("Id")), room.name, room.email, "Mailbox")
    return soap.envelope(answer, request.version)


def _response(operation: str, response_class: str) -> etree._Element:
    return etree.Element(m(operation + "Response"), ResponseClass=response_class, nsmap=soap.NSMAP)


def _address(element: etree._Element, name: str, email: str, mailbox_type: str) -> None:
    sub(element, t("Name"), name)
    sub(element, t("EmailAddress"), email)
    sub(element, t("RoutingType"), "SMTP")
    sub(element, t("MailboxType"), mailbox_type)
