"""The doctor's checks that need nothing but values: settings that load but do not hold
together, the address ranges' age, rooms whose subscriptions are lost, the self-test's answer
read back, and what a token claims."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import SecretStr

from pushsync.admin.room_status import RoomStatus
from pushsync.cli.doctor import ranges_findings, settings_findings, subscription_findings
from pushsync.cli.doctor_findings import Level
from pushsync.ews.self_test import answered_status, self_test_notification
from pushsync.ews.send_notification import parse_send_notification
from pushsync.ews.send_notification_result import ANSWERS, SubscriptionStatus
from pushsync.graph.token_claims import roles_of, token_claims
from pushsync.settings import Settings

HEALTHY = {
    "rooms": ["a@x.example"],
    "public_url": "http://pushsync.example",
    "callback_token": SecretStr("t"),
    "ews_url": "https://ews.example/EWS/Exchange.asmx",
    "tenant_id": "t",
    "client_id": "c",
    "client_secret": SecretStr("s"),
}


def levels(settings: Settings) -> list[tuple[Level, str]]:
    return [(f.level, f.what) for f in settings_findings(settings)]


def test_coherent_settings_give_one_ok() -> None:
    assert levels(Settings(**HEALTHY)) == [(Level.OK, "coherent; rooms over ews")]


def test_each_incoherence_is_named() -> None:
    found = levels(
        Settings(
            **HEALTHY
            | {"ews_url": None, "callback_token": None, "public_url": "https://p.example"},
            graph_rooms=["g@x.example"],
            trusted_proxies=["0.0.0.0/0"],
        )
    )
    failed = [what for level, what in found if level is Level.FAIL]
    assert any("ews_url is not set" in what for what in failed)
    assert any("no callback_token" in what for what in failed)
    assert any("graph_client_state is not set" in what for what in failed)
    assert any("0.0.0.0/0 trusts most of the internet" in what for what in failed)
    assert not any("trusted_proxies is empty" in what for _, what in found)


def test_https_without_trusted_proxies_warns() -> None:
    found = levels(Settings(**HEALTHY | {"public_url": "https://pushsync.example"}))
    assert [level for level, what in found if "trusted_proxies is empty" in what] == [Level.WARN]


def test_rooms_without_public_url_fail() -> None:
    found = levels(Settings(**HEALTHY | {"public_url": None}))
    assert found[0][0] is Level.FAIL and "public_url is not" in found[0][1]


def _ranges(directory: Path, age: timedelta) -> Settings:
    document = {
        "instance": "Worldwide",
        "latest": "2026120100",
        "retrieved_at": (datetime.now(UTC) - age).isoformat(),
        "endpoints": [
            {"id": 1, "serviceArea": "Exchange", "ips": ["40.92.0.0/15", "2a01:111::/32"]}
        ],
    }
    directory.mkdir(exist_ok=True)
    (directory / "exchange-Worldwide.json").write_text(json.dumps(document))
    return Settings(ipranges_dir=directory)


def test_ranges_age_ok_then_warn_then_fail(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    assert ranges_findings(_ranges(tmp_path, timedelta(hours=2)), now)[0].level is Level.OK
    assert ranges_findings(_ranges(tmp_path, timedelta(days=5)), now)[0].level is Level.WARN
    stale = ranges_findings(_ranges(tmp_path, timedelta(days=31)), now)[0]
    assert stale.level is Level.FAIL and "31 days old" in stale.what
    off = ranges_findings(Settings(use_microsoft_ranges=False, ipranges_dir=tmp_path), now)
    assert off[0].level is Level.OK and "not used" in off[0].what


def _room(mailbox: str, kind: str | None) -> RoomStatus:
    return RoomStatus(
        mailbox, "ews", None, None, None, None, None, None, 0, 0, None, kind and "why", kind
    )


def test_lost_subscriptions_fail_other_problems_warn_grouped_by_kind() -> None:
    rooms = [_room(f"r{i}@x.example", "silent") for i in range(7)]
    rooms += [_room("b@x.example", "throttled"), _room("c@x.example", None)]
    found = subscription_findings(Settings(**HEALTHY), rooms)
    [silent] = [f for f in found if "silent" in f.what]
    assert silent.level is Level.FAIL and silent.what.startswith("7 room(s) silent")
    assert "and 2 more" in silent.what
    [throttled] = [f for f in found if "throttled" in f.what]
    assert throttled.level is Level.WARN
    assert not any(f.level is Level.OK for f in found)


def test_no_room_known_is_a_warning_when_rooms_are_configured() -> None:
    [finding] = subscription_findings(Settings(**HEALTHY), [])
    assert finding.level is Level.WARN and "worker has not run" in finding.what
    assert subscription_findings(Settings(), []) == []


def test_the_self_test_notification_is_what_the_receiver_parses() -> None:
    [row] = parse_send_notification(self_test_notification("pushsync-doctor-1"))
    assert row.subscription_id == "pushsync-doctor-1" and row.event_type == "Status"
    assert (
        answered_status(ANSWERS[SubscriptionStatus.UNSUBSCRIBE]) is SubscriptionStatus.UNSUBSCRIBE
    )
    assert answered_status(b"<html>not it</html>") is None
    assert answered_status(b"") is None


def test_token_claims_are_read_from_a_jwt_and_nothing_else() -> None:
    import base64

    payload = base64.urlsafe_b64encode(json.dumps({"roles": ["Calendars.Read"]}).encode())
    claims = token_claims(f"e30.{payload.decode().rstrip('=')}.sig")
    assert claims is not None and roles_of(claims) == {"Calendars.Read"}
    assert token_claims("opaque-token") is None
    assert token_claims("a.!!!.c") is None
