"""A calendar item as EWS returns it (t:CalendarItem), children in schema order.

ItemType then CalendarItemType elements, in the order of types.xsd. Times are UTC with a 'Z';
the item's zone goes out as Windows ids in StartTimeZone / EndTimeZone, which is what exchangelib
reads to turn an all-day event back into local dates.
https://learn.microsoft.com/exchange/client-developer/web-service-reference/calendaritem
https://learn.microsoft.com/exchange/client-developer/web-service-reference/recurrence-recurrencetype
"""

from __future__ import annotations

from datetime import datetime, timedelta

from lxml import etree

from pushsync.ews.namespaces import m, t
from pushsync.simulator.calendar import RoomCalendar
from pushsync.simulator.ews.notification import xs_datetime
from pushsync.simulator.ews.soap import sub
from pushsync.simulator.items import CalendarItem, Instance, Person
from pushsync.simulator.recurrence import WEEKDAY_NAMES, Recurrence


def windows_zone(iana: str) -> str:
    # on demand: exchangelib's package loads whole, seconds of start-up for every `pushsync`
    # command, which finds this module through the simulator's command plugin
    from exchangelib.winzone import IANA_TO_MS_TIMEZONE_MAP

    known: tuple[str, str] = IANA_TO_MS_TIMEZONE_MAP.get(iana, ("UTC", "001"))
    return known[0]


def render_item(
    calendar: RoomCalendar,
    item: CalendarItem,
    original_start: datetime | None = None,
    *,
    organizer_address: bool = True,
) -> etree._Element:
    """A single item or master, or (with `original_start`) one occurrence of a master.

    FindItem leaves out the organizer's address (docs/protocol.md §7): `organizer_address=False`.
    """
    view = calendar.instance(item, original_start)
    element = etree.Element(t("CalendarItem"))
    _item_part(element, calendar, item, view)
    _calendar_part(element, calendar, item, view, organizer_address)
    return element


ONLY_THE_ID = frozenset({"ItemId"})


def shaped(element: etree._Element, names: frozenset[str] | None) -> etree._Element:
    """The item as its request's ItemShape asks for it (`names`, from `requested_properties`):
    for IdOnly, the ItemId and the properties named in AdditionalProperties; Default and
    AllProperties (None) keep the whole rendering. Exchange returns for IdOnly "only the item or
    folder ID" plus what AdditionalProperties adds, so a client that reads a property it did
    not ask for finds nothing, as it would on Exchange.
    https://learn.microsoft.com/exchange/client-developer/exchange-web-services/property-sets-and-response-shapes-in-ews-in-exchange
    """
    if names is None:
        return element
    for child in list(element):
        if etree.QName(child).localname not in names:
            element.remove(child)
    return element


def requested_properties(operation: etree._Element) -> frozenset[str] | None:
    """Element names the operation's IdOnly ItemShape asks for: ItemId always, and each
    AdditionalProperties FieldURI by its name (`calendar:Start` is t:Start); None for the other
    shapes. ONLY_THE_ID when nothing is added."""
    shape = operation.find(m("ItemShape"))
    if shape is None or shape.findtext(t("BaseShape")) != "IdOnly":
        return None
    extra = shape.find(t("AdditionalProperties"))
    uris = (path.get("FieldURI") or "" for path in (extra if extra is not None else ()))
    return ONLY_THE_ID | {uri.partition(":")[2] for uri in uris}


def id_only(item_id: str, change_key: str) -> etree._Element:
    element = etree.Element(t("CalendarItem"))
    sub(element, t("ItemId"), Id=item_id, ChangeKey=change_key)
    return element


def _item_part(
    element: etree._Element, calendar: RoomCalendar, item: CalendarItem, view: Instance
) -> None:
    sub(element, t("ItemId"), Id=view.item_id, ChangeKey=view.change_key)
    sub(element, t("ParentFolderId"), Id=calendar.folder_ids[item.folder], ChangeKey="AQAAAA==")
    sub(element, t("ItemClass"), "IPM.Appointment")
    sub(element, t("Subject"), view.subject)
    sub(element, t("Sensitivity"), view.sensitivity)
    if item.body:
        sub(element, t("Body"), item.body, BodyType="Text")
    sub(element, t("DateTimeCreated"), xs_datetime(item.created))
    sub(element, t("HasAttachments"), "false")
    sub(element, t("LastModifiedName"), item.organizer.name)
    sub(element, t("LastModifiedTime"), xs_datetime(item.last_modified))


def _calendar_part(
    element: etree._Element,
    calendar: RoomCalendar,
    item: CalendarItem,
    view: Instance,
    organizer_address: bool,
) -> None:
    sub(element, t("UID"), item.uid)
    if view.original_start is not None:
        sub(element, t("RecurrenceId"), xs_datetime(view.original_start))
    sub(element, t("DateTimeStamp"), xs_datetime(item.last_modified))
    sub(element, t("Start"), xs_datetime(view.start))
    sub(element, t("End"), xs_datetime(view.end))
    if view.original_start is not None:
        sub(element, t("OriginalStart"), xs_datetime(view.original_start))
    sub(element, t("IsAllDayEvent"), _bool(view.all_day))
    sub(element, t("LegacyFreeBusyStatus"), "Free" if view.cancelled else view.response.free_busy)
    sub(element, t("Location"), view.location)
    sub(element, t("IsMeeting"), "true")
    sub(element, t("IsCancelled"), _bool(view.cancelled))
    sub(element, t("IsRecurring"), _bool(item.recurrence is not None))
    sub(element, t("MeetingRequestWasSent"), "false")
    sub(element, t("IsResponseRequested"), "true")
    sub(element, t("CalendarItemType"), view.item_type)
    sub(element, t("MyResponseType"), view.response.value)
    _organizer(element, item.organizer, organizer_address)
    sub(element, t("Duration"), _duration(view.end - view.start))
    sub(element, t("AppointmentSequenceNumber"), str(item.sequence))
    sub(element, t("AppointmentState"), str(3 | (4 if view.cancelled else 0)))
    if item.recurrence is not None and view.original_start is None:
        _series(element, calendar, item, item.recurrence)
    zone = windows_zone(item.time_zone)
    sub(element, t("StartTimeZone"), Id=zone, Name=zone)
    sub(element, t("EndTimeZone"), Id=zone, Name=zone)


def _organizer(parent: etree._Element, person: Person, with_address: bool) -> None:
    mailbox = sub(sub(parent, t("Organizer")), t("Mailbox"))
    sub(mailbox, t("Name"), person.name)
    if with_address:
        sub(mailbox, t("EmailAddress"), person.email)
        sub(mailbox, t("RoutingType"), "SMTP")
    sub(mailbox, t("MailboxType"), "Mailbox")


def _series(
    parent: etree._Element, calendar: RoomCalendar, master: CalendarItem, pattern: Recurrence
) -> None:
    _recurrence(parent, master, pattern)
    slots = [s for s in master.original_starts() if s not in master.deleted]
    if slots:
        _occurrence_info(parent, "FirstOccurrence", calendar, master, slots[0])
        _occurrence_info(parent, "LastOccurrence", calendar, master, slots[-1])
    if master.modified:
        modified = sub(parent, t("ModifiedOccurrences"))
        for original_start in sorted(master.modified):
            _occurrence_info(modified, "Occurrence", calendar, master, original_start)
    if master.deleted:
        deleted = sub(parent, t("DeletedOccurrences"))
        for original_start in sorted(master.deleted):
            occurrence = sub(deleted, t("DeletedOccurrence"))
            sub(occurrence, t("Start"), xs_datetime(original_start))


def _recurrence(parent: etree._Element, master: CalendarItem, pattern: Recurrence) -> None:
    recurrence = sub(parent, t("Recurrence"))
    if pattern.weekly:
        weekly = sub(recurrence, t("WeeklyRecurrence"))
        sub(weekly, t("Interval"), str(pattern.interval))
        days = " ".join(WEEKDAY_NAMES[d] for d in sorted(set(pattern.weekdays)))
        sub(weekly, t("DaysOfWeek"), days)
        sub(weekly, t("FirstDayOfWeek"), "Monday")
    else:
        daily = sub(recurrence, t("DailyRecurrence"))
        sub(daily, t("Interval"), str(pattern.interval))
    first_day = master.start.astimezone(master.zone).date().isoformat()
    if pattern.until is not None:
        end = sub(recurrence, t("EndDateRecurrence"))
        sub(end, t("StartDate"), first_day)
        sub(end, t("EndDate"), pattern.until.isoformat())
    elif pattern.count is not None:
        numbered = sub(recurrence, t("NumberedRecurrence"))
        sub(numbered, t("StartDate"), first_day)
        sub(numbered, t("NumberOfOccurrences"), str(pattern.count))
    else:
        sub(sub(recurrence, t("NoEndRecurrence")), t("StartDate"), first_day)


def _occurrence_info(
    parent: etree._Element,
    tag: str,
    calendar: RoomCalendar,
    master: CalendarItem,
    original_start: datetime,
) -> None:
    view = calendar.instance(master, original_start)
    info = sub(parent, t(tag))
    sub(info, t("ItemId"), Id=view.item_id, ChangeKey=view.change_key)
    sub(info, t("Start"), xs_datetime(view.start))
    sub(info, t("End"), xs_datetime(view.end))
    sub(info, t("OriginalStart"), xs_datetime(original_start))


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _duration(value: timedelta) -> str:
    """xs:duration of a timedelta, e.g. PT1H30M or P1D."""
    seconds = int(value.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    text = "P" + (f"{days}D" if days else "")
    if hours or minutes or not days:
        text += (
            "T" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes or not hours else "")
        )
    return text
