"""The values of an EWS notification, read as XML Schema writes them and bounded by what the
notification table holds on both engines.

EWS types its notification fields with XML Schema built-ins (types.xsd): TimeStamp is an
xs:dateTime, UnreadCount an xs:int, MoreEvents an xs:boolean, ids and watermarks strings.
Python's own readers take more than those lexical forms (`datetime.fromisoformat` takes a space
or a lowercase `t` for the `T` and week dates, `int` takes Arabic-Indic digits and `5_0`,
`str.strip` strips NBSP), so each form is matched here against the grammar of XML Schema 1.1 Part 2:
https://www.w3.org/TR/xmlschema11-2/#dateTime, #int, #boolean. What the grammar allows but a column
cannot hold, or a reader cannot read back, is refused as well (docs/notification-table.md):

- times: the UTC instant from 0001-01-02T00:00:00Z up to, not including, 9999-12-31T00:00:00Z.
  PostgreSQL stores wider, but psycopg reads a timestamptz in the session's time zone, and
  `0001-01-01T00:00:00Z` read in America/New_York is before year 1 (measured: DataError); the day
  of margin keeps every zone readable. Fraction digits past the sixth are dropped: both engines
  keep microseconds (Exchange writes whole seconds; .NET writes at most seven digits);
- integers: xs:int itself, -2**31 .. 2**31-1, which is PostgreSQL's INTEGER exactly;
- text: at most MAX_TEXT_LENGTH characters.

Every refusal is a MalformedNotification naming the element, so the receiver answers 400 and
stores nothing.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from lxml import etree

from pushsync.errors import MalformedNotification

XML_WHITESPACE = " \t\r\n"  # the S production of XML 1.0; NBSP and U+3000 are not in it
MAX_TEXT_LENGTH = 512  # ids and watermarks: Exchange's are far shorter; anything longer is not it
MAX_DATETIME_LENGTH = 40  # 2026-11-24T10:00:00.1234567+01:00 is 33
INT_MIN, INT_MAX = -(2**31), 2**31 - 1

EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
END = datetime(9999, 12, 31, tzinfo=UTC)  # the first instant refused

# XML Schema 1.1 dateTimeLexicalRep, with ASCII digits only (\d would take any script's digits).
_DATETIME = re.compile(
    r"(?P<year>-?(?:[1-9][0-9]{3,}|0[0-9]{3}))-(?P<month>0[1-9]|1[0-2])-(?P<day>0[1-9]|[12][0-9]|3[01])"
    r"T(?:(?P<hour>[01][0-9]|2[0-3]):(?P<minute>[0-5][0-9]):(?P<second>[0-5][0-9])"
    r"(?:\.(?P<fraction>[0-9]+))?|(?P<end_of_day>24:00:00(?:\.0+)?))"
    r"(?P<zone>Z|[+-](?:(?:0[0-9]|1[0-3]):[0-5][0-9]|14:00))?",
    re.ASCII,
)
_INT = re.compile(r"[+-]?[0-9]+", re.ASCII)
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}
_ORIGIN = datetime(1, 1, 1, tzinfo=UTC)
_EARLIEST_SECONDS = int((EARLIEST - _ORIGIN).total_seconds())
_END_SECONDS = int((END - _ORIGIN).total_seconds())


def text_of(element: etree._Element, name: str) -> str | None:
    """The text of a text-only element, without the XML whitespace around it; None if empty.

    Anything else is kept as sent: ids are compared byte for byte. A child element inside
    (mixed content) is refused: reading only the text before it would store a part.
    """
    if len(element):
        raise MalformedNotification(f"{name} holds an element; it is text only")
    text = element.text
    if text is None:
        return None
    text = text.strip(XML_WHITESPACE)
    if len(text) > MAX_TEXT_LENGTH:
        raise MalformedNotification(f"{name} longer than {MAX_TEXT_LENGTH} characters")
    return text or None


def bounded(value: str, name: str) -> str:
    if len(value) > MAX_TEXT_LENGTH:
        raise MalformedNotification(f"{name} longer than {MAX_TEXT_LENGTH} characters")
    return value


def read_datetime(text: str | None, name: str) -> datetime:
    """An xs:dateTime with a time zone, as a UTC datetime within the stored range."""
    if text is None:
        raise MalformedNotification(f"{name} is empty, not an xs:dateTime")
    if len(text) > MAX_DATETIME_LENGTH:
        raise MalformedNotification(f"{name} longer than {MAX_DATETIME_LENGTH} characters")
    match = _DATETIME.fullmatch(text)
    if match is None:
        raise MalformedNotification(f"{name} {text!r} is not an xs:dateTime")
    year, month, day = int(match["year"]), int(match["month"]), int(match["day"])
    if day > _days_in_month(year, month):
        raise MalformedNotification(f"{name} {text!r} names a day its month does not have")
    if match["zone"] is None:
        raise MalformedNotification(f"{name} {text!r} has no time zone")
    if not 1 <= year <= 9999:  # the margin puts any other year out of range, whatever the zone
        raise MalformedNotification(f"{name} {text!r} is outside the years stored")
    # Seconds since 0001-01-01T00:00:00Z, in integers: the local time or the instant may be
    # one that datetime cannot hold (9999-12-31T24:00:00, or a zone pushing it past year 9999).
    day_number = date(year, month, day).toordinal() - 1
    seconds = day_number * 86400 + _seconds_of_day(match) - _zone_seconds(match["zone"])
    if not _EARLIEST_SECONDS <= seconds < _END_SECONDS:
        raise MalformedNotification(
            f"{name} {text!r} is outside {EARLIEST:%Y-%m-%d} .. {END:%Y-%m-%d} UTC"
        )
    micro = int((match["fraction"] or "0")[:6].ljust(6, "0"))
    return _ORIGIN + timedelta(seconds=seconds, microseconds=micro)


def read_int(text: str | None, name: str) -> int:
    """An xs:int: optional sign, ASCII digits, within 32 bits."""
    if text is None or _INT.fullmatch(text) is None:
        raise MalformedNotification(f"{name} {text!r} is not an xs:int")
    if len(text.lstrip("+-").lstrip("0")) > 10 or not INT_MIN <= (value := int(text)) <= INT_MAX:
        raise MalformedNotification(f"{name} {text!r} is outside xs:int")
    return value


def read_boolean(text: str | None, name: str) -> bool:
    value = _BOOLEANS.get(text) if text is not None else None
    if value is None:
        raise MalformedNotification(f"{name} {text!r} is not an xs:boolean")
    return value


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _seconds_of_day(match: re.Match[str]) -> int:
    if match["end_of_day"] is not None:  # 24:00:00 is the first instant of the next day
        return 86400
    return int(match["hour"]) * 3600 + int(match["minute"]) * 60 + int(match["second"])


def _zone_seconds(zone: str) -> int:
    if zone == "Z":
        return 0
    seconds = int(zone[1:3]) * 3600 + int(zone[4:6]) * 60
    return -seconds if zone[0] == "-" else seconds
