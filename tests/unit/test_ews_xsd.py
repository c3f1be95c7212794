"""XML Schema's lexical forms and the stored ranges, value by value (ews/xsd.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from lxml import etree

from pushsync.errors import MalformedNotification
from pushsync.ews.xsd import read_boolean, read_datetime, read_int, text_of


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        ("2026-11-24T10:00:00Z", datetime(2026, 11, 24, 10, tzinfo=UTC)),
        ("2026-11-24T11:00:00+01:00", datetime(2026, 11, 24, 10, tzinfo=UTC)),
        ("2026-11-24T10:00:00-00:00", datetime(2026, 11, 24, 10, tzinfo=UTC)),
        ("2026-11-24T10:00:00.1234567Z", datetime(2026, 11, 24, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2026-11-24T10:00:00.5Z", datetime(2026, 11, 24, 10, 0, 0, 500000, tzinfo=UTC)),
        ("2026-11-23T24:00:00Z", datetime(2026, 11, 24, tzinfo=UTC)),
        ("2026-11-23T24:00:00.000Z", datetime(2026, 11, 24, tzinfo=UTC)),
        ("2024-02-29T00:00:00Z", datetime(2024, 2, 29, tzinfo=UTC)),
        ("2000-02-29T00:00:00Z", datetime(2000, 2, 29, tzinfo=UTC)),
        ("2026-11-24T23:59:59+14:00", datetime(2026, 11, 24, 9, 59, 59, tzinfo=UTC)),
        ("2026-11-24T00:00:00-13:59", datetime(2026, 11, 24, 13, 59, tzinfo=UTC)),
        # the range: from 0001-01-02 up to, not including, 9999-12-31 (UTC)
        ("0001-01-02T00:00:00Z", datetime(1, 1, 2, tzinfo=UTC)),
        ("0001-01-02T14:00:00+14:00", datetime(1, 1, 2, tzinfo=UTC)),
        ("9999-12-30T23:59:59.9999999Z", datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=UTC)),
        ("9999-12-29T24:00:00Z", datetime(9999, 12, 30, tzinfo=UTC)),
        ("9999-12-30T10:00:00-13:59", datetime(9999, 12, 30, 23, 59, tzinfo=UTC)),
    ],
)
def test_datetimes_read_as_their_utc_instant(text: str, instant: datetime) -> None:
    value = read_datetime(text, "TimeStamp")
    assert value == instant
    assert value.tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("2026-11-24 10:00Z", "not an xs:dateTime"),  # fromisoformat takes these
        ("2026-11-24t10:00:00Z", "not an xs:dateTime"),
        ("2026-W48-2T10:00:00Z", "not an xs:dateTime"),
        ("2026-11-24T10:00Z", "not an xs:dateTime"),
        ("20261124T100000Z", "not an xs:dateTime"),
        ("2026-11-24T10:00:00z", "not an xs:dateTime"),
        ("2026-11-24T10:00:00+0100", "not an xs:dateTime"),
        ("2026-11-24T10:00:00+01", "not an xs:dateTime"),
        ("2026-11-24T10:00:00.Z", "not an xs:dateTime"),
        ("\u0662\u0660\u0662\u0666-11-24T10:00:00Z", "not an xs:dateTime"),
        ("2026-11-24T25:00:00Z", "not an xs:dateTime"),
        ("2026-11-24T24:00:01Z", "not an xs:dateTime"),
        ("2026-11-24T24:00:00.5Z", "not an xs:dateTime"),
        ("2026-11-24T10:60:00Z", "not an xs:dateTime"),
        ("2026-11-24T10:00:60Z", "not an xs:dateTime"),
        ("2026-11-24T10:00:00+14:01", "not an xs:dateTime"),
        ("2026-11-24T10:00:00+15:00", "not an xs:dateTime"),
        ("02026-11-24T10:00:00Z", "not an xs:dateTime"),
        ("2026-13-24T10:00:00Z", "not an xs:dateTime"),
        ("2026-00-24T10:00:00Z", "not an xs:dateTime"),
        (" 2026-11-24T10:00:00Z", "not an xs:dateTime"),  # whitespace goes before; not here
        ("2026-02-29T10:00:00Z", "does not have"),
        ("1900-02-29T10:00:00Z", "does not have"),
        ("2026-04-31T10:00:00Z", "does not have"),
        ("2026-11-24T10:00:00", "no time zone"),
        ("2026-11-24T10:00:00." + "1" * 40 + "Z", "longer than"),
        # the issue's: the local time is a datetime, its UTC instant is not
        ("9999-12-31T23:30:00-01:00", "outside"),
        ("0001-01-01T00:00:00+14:00", "outside"),
        ("0001-01-01T23:59:59Z", "outside"),
        ("9999-12-31T00:00:00Z", "outside"),
        ("9999-12-30T24:00:00Z", "outside"),
        ("9999-12-31T23:59:59Z", "outside"),
        ("0000-12-31T20:00:00-14:00", "outside"),
        ("-0001-01-01T00:00:00Z", "outside"),
        ("10000-01-01T00:00:00+14:00", "outside"),
    ],
)
def test_other_datetimes_are_refused_naming_the_element(text: str, why: str) -> None:
    with pytest.raises(MalformedNotification, match=f"TimeStamp.*{why}"):
        read_datetime(text, "TimeStamp")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("5", 5),
        ("+5", 5),
        ("-5", -5),
        ("007", 7),
        ("2147483647", 2**31 - 1),
        ("-2147483648", -(2**31)),
        ("+00000000000000002147483647", 2**31 - 1),
    ],
)
def test_ints(text: str, value: int) -> None:
    assert read_int(text, "UnreadCount") == value


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("2147483648", "outside xs:int"),
        ("-2147483649", "outside xs:int"),
        ("18446744073709551616", "outside xs:int"),
        ("9" * 5000, "outside xs:int"),  # past int()'s own digit limit, still our error
        ("\u0665", "not an xs:int"),  # ARABIC-INDIC DIGIT FIVE
        ("5_0", "not an xs:int"),
        ("1e3", "not an xs:int"),
        ("0x10", "not an xs:int"),
        ("+-1", "not an xs:int"),
        ("5.0", "not an xs:int"),
        ("", "not an xs:int"),
        (None, "not an xs:int"),
        ("5\u00a0", "not an xs:int"),
    ],
)
def test_other_ints_are_refused(text: str | None, why: str) -> None:
    with pytest.raises(MalformedNotification, match=f"UnreadCount.*{why}"):
        read_int(text, "UnreadCount")


def test_booleans() -> None:
    assert [read_boolean(t, "MoreEvents") for t in ("true", "1", "false", "0")] == [
        True,
        True,
        False,
        False,
    ]
    for text in ("True", "TRUE", "yes", "", None, "01", "t"):
        with pytest.raises(MalformedNotification, match=r"MoreEvents.*xs:boolean"):
            read_boolean(text, "MoreEvents")


def _element(inner: str) -> etree._Element:
    return etree.fromstring(f"<w>{inner}</w>".encode())


@pytest.mark.parametrize(
    ("inner", "text"),
    [
        ("AQAB", "AQAB"),
        (" \t\r\n AQAB \n", "AQAB"),
        ("\u00a0AQAB\u3000", "\u00a0AQAB\u3000"),  # not XML whitespace: part of the id
        ("A Q\tA B", "A Q\tA B"),
        ("&#13;AQAB&#13;", "AQAB"),
        ("AQ<![CDATA[A]]>B", "AQAB"),
        ("", None),
        ("  \n ", None),
    ],
)
def test_text_is_kept_but_for_xml_whitespace_around_it(inner: str, text: str | None) -> None:
    assert text_of(_element(inner), "Watermark") == text


def test_mixed_content_and_overlong_text_are_refused() -> None:
    with pytest.raises(MalformedNotification, match="Watermark holds an element"):
        text_of(_element("AQAA<t:x xmlns:t='urn:x'/>AB9"), "Watermark")
    with pytest.raises(MalformedNotification, match="Watermark holds an element"):
        text_of(_element("<x>AQAA</x>"), "Watermark")
    assert text_of(_element("A" * 512), "Watermark") == "A" * 512
    with pytest.raises(MalformedNotification, match="Watermark longer than 512"):
        text_of(_element("A" * 513), "Watermark")
