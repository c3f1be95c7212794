"""The SendNotification parser against the sample corpus and hand-made edge cases."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pushsync.errors import MalformedNotification
from pushsync.ews.send_notification import parse_send_notification
from tests.conftest import EWS_CORPUS

SAMPLES = sorted(EWS_CORPUS.glob("*.xml"))

# corpus key -> Notification attribute, where they differ
_RENAMED = {"timestamp": "event_time"}


def _expected_rows(expected: dict) -> list[dict]:
    if "events" not in expected:  # an error notification is one row
        return [{"event_type": "Error", "response_code": expected["response_code"]}]
    return expected["events"]


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.stem)
def test_every_sample_produces_exactly_its_rows(sample: Path) -> None:
    expected = json.loads(sample.with_suffix(".json").read_text())
    rows = parse_send_notification(sample.read_bytes(), remote_addr="192.0.2.7")

    wanted = _expected_rows(expected)
    assert len(rows) == len(wanted)
    for row, event in zip(rows, wanted, strict=True):
        assert row.protocol == "ews"
        assert row.subscription_id == expected["subscription_id"]
        assert row.previous_watermark == expected.get("previous_watermark")
        assert row.remote_addr == "192.0.2.7"
        actual = {name: getattr(row, _RENAMED.get(name, name)) for name in event}
        if "timestamp" in event:
            actual["timestamp"] = row.event_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert actual == event
        # columns the sample leaves out are empty, not invented
        for column in ("item_id", "folder_id", "old_item_id", "old_folder_id", "unread_count"):
            if column not in event:
                assert getattr(row, column) is None, column


ENVELOPE = (
    '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
    '<SendNotification xmlns="http://schemas.microsoft.com/exchange/services/2006/messages" '
    'xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><ResponseMessages>'
    "{messages}</ResponseMessages></SendNotification></s:Body></s:Envelope>"
)


def _message(subscription: str, events: str, more: str = "") -> str:
    return (
        '<SendNotificationResponseMessage ResponseClass="Success"><ResponseCode>NoError'
        f"</ResponseCode><Notification><t:SubscriptionId>{subscription}</t:SubscriptionId>"
        f"<t:PreviousWatermark>PW</t:PreviousWatermark>{more}{events}"
        "</Notification></SendNotificationResponseMessage>"
    )


MODIFIED_FOLDER = (
    "<t:ModifiedEvent><t:Watermark>W1</t:Watermark><t:TimeStamp>2026-11-24T10:00:00Z"
    '</t:TimeStamp><t:FolderId Id="F1" ChangeKey="FK"/><t:ParentFolderId Id="P1" ChangeKey="PK"/>'
    "<t:UnreadCount>3</t:UnreadCount></t:ModifiedEvent>"
)


def test_several_response_messages_are_all_read() -> None:
    body = ENVELOPE.format(
        messages=_message("SUB-A", MODIFIED_FOLDER, "<t:MoreEvents>true</t:MoreEvents>")
        + _message("SUB-B", "<t:StatusEvent><t:Watermark>W9</t:Watermark></t:StatusEvent>")
    )
    rows = parse_send_notification(body.encode())
    assert [(r.subscription_id, r.event_type, r.watermark) for r in rows] == [
        ("SUB-A", "Modified", "W1"),
        ("SUB-B", "Status", "W9"),
    ]
    folder = rows[0]
    assert folder.more_events is True
    assert (folder.folder_id, folder.folder_change_key) == ("F1", "FK")
    assert folder.unread_count == 3
    assert folder.event_time == datetime(2026, 11, 24, 10, tzinfo=UTC)
    assert rows[1].more_events is None


def test_moved_event_keeps_old_ids() -> None:
    moved = (
        "<t:MovedEvent><t:Watermark>W2</t:Watermark><t:TimeStamp>2026-11-24T10:00:00Z"
        '</t:TimeStamp><t:ItemId Id="NEW" ChangeKey="CK"/><t:ParentFolderId Id="DELETED"/>'
        '<t:OldItemId Id="OLD"/><t:OldParentFolderId Id="CAL"/></t:MovedEvent>'
    )
    (row,) = parse_send_notification(ENVELOPE.format(messages=_message("S", moved)).encode())
    assert (row.item_id, row.old_item_id, row.parent_folder_id, row.old_parent_folder_id) == (
        "NEW",
        "OLD",
        "DELETED",
        "CAL",
    )
    assert row.parent_folder_change_key is None


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"", "empty"),
        (b"<a>", "not well-formed"),
        (b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>', "DOCTYPE"),
        (ENVELOPE.format(messages="").encode(), "no response message"),
        (
            ENVELOPE.format(messages=_message("", MODIFIED_FOLDER)).encode(),
            "missing SubscriptionId",
        ),
        (ENVELOPE.format(messages=_message("S", "")).encode(), "no event"),
        (
            ENVELOPE.replace("http://schemas.microsoft", "https://schemas.microsoft")
            .format(messages=_message("S", MODIFIED_FOLDER))
            .encode(),
            "no SendNotification",
        ),
        (
            ENVELOPE.format(
                messages=_message("S", MODIFIED_FOLDER.replace("2026-11-24T10:00:00Z", "soon"))
            ).encode(),
            "not an xs:dateTime",
        ),
        (
            ENVELOPE.format(
                messages=_message("S", MODIFIED_FOLDER, "<t:MoreEvents>maybe</t:MoreEvents>")
            ).encode(),
            "xs:boolean",
        ),
        (ENVELOPE.format(messages=_message("S" * 600, MODIFIED_FOLDER)).encode(), "longer than"),
        (
            b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body/></s:Envelope>',
            "no SendNotification",
        ),
    ],
)
def test_malformed_bodies_are_refused_with_a_reason(body: bytes, why: str) -> None:
    with pytest.raises(MalformedNotification, match=why):
        parse_send_notification(body)


def test_error_notification_without_subscription_id_is_refused() -> None:
    body = ENVELOPE.format(
        messages='<SendNotificationResponseMessage ResponseClass="Error"><ResponseCode>'
        "ErrorReadEventsFailed</ResponseCode></SendNotificationResponseMessage>"
    )
    with pytest.raises(MalformedNotification, match="MessageXml"):
        parse_send_notification(body.encode())


def test_a_timestamp_read_before_is_the_same_instant_and_bad_ones_fail_every_time() -> None:
    def event_time(stamp: str) -> datetime | None:
        event = MODIFIED_FOLDER.replace("2026-11-24T10:00:00Z", stamp)
        (row,) = parse_send_notification(ENVELOPE.format(messages=_message("S", event)).encode())
        return row.event_time

    first = event_time("2026-11-24T11:00:00+01:00")
    again = event_time("2026-11-24T11:00:00+01:00")
    assert first == again == datetime(2026, 11, 24, 10, tzinfo=UTC)
    assert again is not None and again.tzinfo is UTC  # read as the UTC instant it names
    for bad in ("2026-11-24T11:00:00", "soon", "2026-11-24T11:00:00." + "1" * 40 + "Z"):
        # no zone; not a time; a time, but longer than Exchange writes one
        for _ in range(2):
            with pytest.raises(MalformedNotification):
                event_time(bad)


def _one_event(event: str, subscription: str = "S") -> bytes:
    return ENVELOPE.format(messages=_message(subscription, event)).encode()


def test_ids_and_watermarks_are_stored_as_sent_but_for_xml_whitespace() -> None:
    event = MODIFIED_FOLDER.replace(
        "<t:Watermark>W1</t:Watermark>", "<t:Watermark>\n  \u00a0W1\u3000\t</t:Watermark>"
    ).replace('Id="F1"', 'Id=" F1\u00a0"')
    (row,) = parse_send_notification(_one_event(event, "\t SUB\u00a0 \n"))
    assert row.subscription_id == "SUB\u00a0"
    assert row.watermark == "\u00a0W1\u3000"
    assert row.folder_id == " F1\u00a0"  # attributes carry no layout: kept whole


@pytest.mark.parametrize(
    ("event", "why"),
    [
        (
            MODIFIED_FOLDER.replace("W1</t:Watermark>", "AQAA<t:x/>AB9</t:Watermark>"),
            "Watermark holds an element",
        ),
        (
            MODIFIED_FOLDER.replace("3</t:UnreadCount>", "3<t:x/></t:UnreadCount>"),
            "UnreadCount holds an element",
        ),
        (MODIFIED_FOLDER.replace(">3<", ">18446744073709551616<"), "UnreadCount.*outside"),
        (MODIFIED_FOLDER.replace(">3<", ">2147483648<"), "UnreadCount.*outside"),
        (MODIFIED_FOLDER.replace(">3<", ">\u0665<"), "UnreadCount.*not an xs:int"),
        (MODIFIED_FOLDER.replace(">3<", ">5_0<"), "UnreadCount.*not an xs:int"),
        (MODIFIED_FOLDER.replace(">3<", "><"), "UnreadCount.*not an xs:int"),
        (
            MODIFIED_FOLDER.replace("2026-11-24T10:00:00Z", "9999-12-31T23:30:00-01:00"),
            "TimeStamp.*outside",
        ),
        (
            MODIFIED_FOLDER.replace("2026-11-24T10:00:00Z", "0001-01-01T00:00:00+14:00"),
            "TimeStamp.*outside",
        ),
        (
            MODIFIED_FOLDER.replace("2026-11-24T10:00:00Z", "2026-11-24 10:00Z"),
            "TimeStamp.*not an xs:dateTime",
        ),
        (
            MODIFIED_FOLDER.replace(
                "<t:Watermark>W1", "<t:Watermark>W0</t:Watermark><t:Watermark>W1"
            ),
            "Watermark appears twice",
        ),
        (
            MODIFIED_FOLDER.replace(">3<", ">3</t:UnreadCount><t:UnreadCount>4<"),
            "UnreadCount appears twice",
        ),
        (
            MODIFIED_FOLDER.replace('ChangeKey="FK"', 'ChangeKey="' + "K" * 513 + '"'),
            "ChangeKey longer",
        ),
        (MODIFIED_FOLDER.replace('Id="F1"', 'Id=""'), "FolderId without Id"),
    ],
)
def test_values_the_table_cannot_hold_as_sent_are_refused(event: str, why: str) -> None:
    with pytest.raises(MalformedNotification, match=why):
        parse_send_notification(_one_event(event))


def test_notification_level_values_are_checked_too() -> None:
    twice = "<t:SubscriptionId>S2</t:SubscriptionId>" + MODIFIED_FOLDER
    with pytest.raises(MalformedNotification, match="SubscriptionId appears twice"):
        parse_send_notification(_one_event(twice))
    with pytest.raises(MalformedNotification, match=r"MoreEvents.*xs:boolean"):
        parse_send_notification(_one_event("<t:MoreEvents></t:MoreEvents>" + MODIFIED_FOLDER))
    with pytest.raises(MalformedNotification, match="SubscriptionId holds an element"):
        parse_send_notification(_one_event(MODIFIED_FOLDER, "S<t:x/>"))
