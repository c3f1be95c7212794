"""GetFolder for a room's root, calendar and Deleted Items folders.

exchangelib asks for the root and then the calendar (`account.calendar`) before anything else.
https://learn.microsoft.com/exchange/client-developer/web-service-reference/getfolder-operation
"""

from __future__ import annotations

from lxml import etree

from pushsync.ews.namespaces import m, t
from pushsync.simulator.ews import soap
from pushsync.simulator.ews.mailbox import FolderRef, OperationError, folder_ids, resolve_folder
from pushsync.simulator.ews.soap import EwsRequest, sub
from pushsync.simulator.exchange import Exchange
from pushsync.simulator.items import Folder

_CLASSES = {
    None: ("Folder", None, "Top of Information Store"),
    Folder.CALENDAR: ("CalendarFolder", "IPF.Appointment", "Calendar"),
    Folder.DELETED_ITEMS: ("Folder", "IPF.Note", "Deleted Items"),
}


def handle(exchange: Exchange, request: EwsRequest) -> bytes:
    messages = []
    for element in folder_ids(request, "FolderIds"):
        try:
            ref = resolve_folder(exchange, request, element)
        except OperationError as error:
            messages.append(soap.error_message("GetFolder", error.code, error.text))
            continue
        message = soap.message("GetFolder")
        folders = sub(message, m("Folders"))
        folders.append(render_folder(ref))
        messages.append(message)
    return soap.response("GetFolder", request.version, messages)


def render_folder(ref: FolderRef) -> etree._Element:
    tag, folder_class, name = _CLASSES[ref.folder]
    element = etree.Element(t(tag))
    sub(element, t("FolderId"), Id=ref.folder_id, ChangeKey="AQAAABYAAAA=")
    if ref.folder is not None:
        sub(element, t("ParentFolderId"), Id=ref.calendar.root_folder_id, ChangeKey="AQAAAA==")
    if folder_class is not None:
        sub(element, t("FolderClass"), folder_class)
    sub(element, t("DisplayName"), name)
    count = len(ref.calendar.items(ref.folder)) if ref.folder is not None else 0
    sub(element, t("TotalCount"), str(count))
    sub(element, t("ChildFolderCount"), "0" if ref.folder is not None else "2")
    if ref.folder is not Folder.CALENDAR:
        sub(element, t("UnreadCount"), "0")
    return element
