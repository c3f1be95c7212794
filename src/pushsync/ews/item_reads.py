"""GetItem and SyncFolderItems answers read into only what pushsync asked for.

Why this exists (the EWS path's one speed trick; the figures are in docs/benchmarks.md under
"EWS answers read field by field"): exchangelib turns each item of an answer into a whole
CalendarItem. `EWSElement.from_xml` runs the parser of every one of the class's ~80 fields, and
`__init__` sets every one of them, even when the request named a dozen (`only_fields`). With
SyncFolderItems the same happens for each changed item of an IdOnly page, of which pushsync
reads the id alone. py-spy on the sync process onboarding 3,000 EWS rooms found 43 % of its CPU
there.

So here a GetItem answer's CalendarItem is read with exchangelib's own Field parsers, for the
fields the request named only (`ReadItem`), and a SyncFolderItems change keeps its ItemId. The
requests are the ones exchangelib sends; any other element of an answer (another item class, an
error) goes the library's way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

from exchangelib import CalendarItem
from exchangelib.properties import ItemId
from exchangelib.services import GetItem, SyncFolderItems
from exchangelib.util import TNS

from pushsync.ews.calendar_items import ITEM_FIELDS

_CALENDAR_ITEM = f"{{{TNS}}}CalendarItem"
_ID_TAG = ItemId.response_tag()


class ReadItem:
    """A CalendarItem's id, change key and the fields a GetItem asked for, with the values
    exchangelib would have given them. A field not asked for is not an attribute."""

    # _meeting_timezone: what normalize_fields adds for start and end before Exchange 2010
    __slots__ = ("_id", "_meeting_timezone", *ITEM_FIELDS)
    _id: Any  # an ItemId

    @property
    def id(self) -> str | None:
        return self._id.id if self._id is not None else None

    @property
    def changekey(self) -> str | None:
        return self._id.changekey if self._id is not None else None

    def __repr__(self) -> str:
        return f"ReadItem(id={self.id!r}, uid={getattr(self, 'uid', None)!r})"


def read_item(elem: Any, account: Any, fields: Sequence[Any]) -> ReadItem:
    item = ReadItem()
    for field in fields:
        setattr(item, field.name, field.from_xml(elem=elem, account=account))
    _all_day_dates(item)
    return item


def _all_day_dates(item: ReadItem) -> None:
    """What `CalendarItem.from_xml` does after its fields: EWS gives an all-day event's start
    and end as datetimes; exchangelib turns them into the local dates, the end's a day earlier
    (calendar_items.py reads them that way)."""
    if not getattr(item, "is_all_day", None):
        return
    for name in ("start", "end"):
        value = getattr(item, name, None)
        if value is None:
            continue
        if name == "end":
            value -= dt.timedelta(days=1)
        setattr(item, name, value.astimezone(getattr(item, f"_{name}_timezone", None)).date())


class _GetReadItems(GetItem):  # type: ignore[misc]
    def __init__(self, *args: Any, fields: Sequence[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fields = fields

    def _elem_to_obj(self, elem: Any) -> Any:
        if elem.tag != _CALENDAR_ITEM:
            return super()._elem_to_obj(elem)
        return read_item(elem, self.account, self._fields)


def get_items(
    account: Any, folder: Any, ids: Sequence[Any], *, only: Sequence[str], chunk_size: int
) -> Iterator[Any]:
    """`account.fetch(ids, folder, only_fields=only, chunk_size)`, the same requests, with each
    calendar item a ReadItem of `only` (in the order of `ids`; an id not found is its error)."""
    if not ids:
        return iter(())
    for name in only:
        folder.validate_item_field(field=name, version=account.version)
    asked = folder.normalize_fields(fields=only)
    named = {path.field.name: path.field for path in asked}  # start and end add their zones
    fields = [CalendarItem.get_field_by_fieldname("_id"), *named.values()]
    service = _GetReadItems(account=account, chunk_size=chunk_size, fields=fields)
    return iter(
        service.call(
            items=ids,
            additional_fields={path for path in asked if not path.field.is_attribute},
            shape="IdOnly",
        )
    )


class SyncItemIds(SyncFolderItems):  # type: ignore[misc]
    """SyncFolderItems whose created and updated items are their ItemId only (pushsync asks
    for IdOnly and reads the id)."""

    def _elem_to_obj(self, elem: Any) -> Any:
        change_type = self.change_types_map[elem.tag]
        if change_type in (self.CREATE, self.UPDATE):
            return change_type, ItemId.from_xml(elem=elem[0].find(_ID_TAG), account=self.account)
        return super()._elem_to_obj(elem)
