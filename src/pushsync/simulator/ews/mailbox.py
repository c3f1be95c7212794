"""Which mailbox and folder a request means: impersonation, delegate access, folder ids.

Impersonation (the ExchangeImpersonation header) acts as the room; naming the room's mailbox in
a DistinguishedFolderId without it is delegate access, which Exchange allows for reading with
FullAccess but refuses for push subscriptions (see subscribe.py).
https://learn.microsoft.com/exchange/client-developer/exchange-web-services/impersonation-and-ews-in-exchange
https://learn.microsoft.com/exchange/client-developer/web-service-reference/distinguishedfolderid
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from pushsync.ews.namespaces import m, t
from pushsync.simulator import ids
from pushsync.simulator.calendar import RoomCalendar
from pushsync.simulator.ews.soap import EwsRequest, SoapFault
from pushsync.simulator.exchange import Exchange
from pushsync.simulator.items import Folder

ROOT_NAMES = frozenset({"root", "msgfolderroot"})
FOLDER_NAMES = {"calendar": Folder.CALENDAR, "deleteditems": Folder.DELETED_ITEMS}


class OperationError(Exception):
    """An error reported inside one response message (ResponseClass="Error")."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


@dataclass(frozen=True, slots=True)
class FolderRef:
    calendar: RoomCalendar
    folder: Folder | None  # None: the root of the mailbox
    delegate: bool  # reached without impersonating its owner

    @property
    def folder_id(self) -> str:
        if self.folder is None:
            return self.calendar.root_folder_id
        return self.calendar.folder_ids[self.folder]


def acting_mailbox(exchange: Exchange, request: EwsRequest) -> RoomCalendar | None:
    """The impersonated room (a SOAP fault if not allowed); None without impersonation."""
    if request.impersonated is None:
        return None
    if request.user.lower() not in {u.lower() for u in exchange.config.impersonators}:
        raise SoapFault(
            "ErrorImpersonateUserDenied", "The account does not have permission to impersonate."
        )
    calendar = exchange.calendar(request.impersonated)
    if calendar is None:
        raise SoapFault("ErrorNonExistentMailbox", f"No mailbox for {request.impersonated}.")
    return calendar


def resolve_folder(exchange: Exchange, request: EwsRequest, element: etree._Element) -> FolderRef:
    """A t:DistinguishedFolderId or t:FolderId element, in the request's mailbox context."""
    acting = acting_mailbox(exchange, request)
    if element.tag == t("FolderId"):
        return _by_id(exchange, acting, element.get("Id", ""))
    if element.tag != t("DistinguishedFolderId"):
        raise OperationError("ErrorInvalidIdMalformed", "Not a folder id.")
    named = element.findtext(f"{t('Mailbox')}/{t('EmailAddress')}")
    calendar = exchange.calendar(named) if named else acting
    if calendar is None:
        code = "ErrorNonExistentMailbox" if named else "ErrorMissingEmailAddress"
        raise OperationError(code, f"No mailbox {named or ''} to look in.")
    name = element.get("Id", "")
    if name in ROOT_NAMES:
        return FolderRef(calendar, None, delegate=calendar is not acting)
    if name not in FOLDER_NAMES:
        raise OperationError("ErrorFolderNotFound", f"The folder {name} does not exist.")
    return FolderRef(calendar, FOLDER_NAMES[name], delegate=calendar is not acting)


def _by_id(exchange: Exchange, acting: RoomCalendar | None, folder_id: str) -> FolderRef:
    """The folder an id names; the id holds its mailbox's GUID (`ids.folder_id`)."""
    owner = exchange.by_guid.get(ids.id_mailbox_guid(folder_id) or b"")
    for calendar in [owner] if owner is not None else []:
        if folder_id == calendar.root_folder_id:
            return FolderRef(calendar, None, delegate=calendar is not acting)
        for folder, known in calendar.folder_ids.items():
            if folder_id == known:
                return FolderRef(calendar, folder, delegate=calendar is not acting)
    raise OperationError("ErrorFolderNotFound", "The specified folder could not be found.")


def folder_ids(request: EwsRequest, container: str) -> list[etree._Element]:
    """The folder id elements inside `m:{container}` (FolderIds, ParentFolderIds, SyncFolderId)."""
    found = request.element.find(m(container))
    return list(found) if found is not None else []
