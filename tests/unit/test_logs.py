"""Log lines: secrets and Authorization values masked in every form a line may hold them,
JSON lines, and a repeated warning held back with its count."""

from __future__ import annotations

import json
import logging

from pushsync.logs import MASK, JsonFormatter, KeyValueFormatter, Redacting, RepeatLimit

SECRET = "s3cr3t/token+value="


def record(msg: str, level: int = logging.WARNING, **extra: object) -> logging.LogRecord:
    entry = logging.LogRecord("pushsync.test", level, __file__, 1, msg, (), None)
    entry.__dict__.update(extra)
    return entry


def test_a_secret_is_masked_plain_quoted_url_encoded_and_json_escaped() -> None:
    formatter = Redacting(KeyValueFormatter(), [SECRET])
    body = f'<t:URL>https://h/p?token=s3cr3t%2Ftoken%2Bvalue%3D</t:URL> "{SECRET}"'
    line = formatter.format(record(body, detail=SECRET))
    assert "s3cr3t" not in line and line.count(MASK) == 3
    as_json = Redacting(JsonFormatter(), [SECRET]).format(record("x", body=json.dumps(SECRET)))
    assert "s3cr3t" not in as_json


def test_authorization_values_are_masked_in_headers_and_dicts() -> None:
    formatter = Redacting(KeyValueFormatter(), [])
    for text in (
        "Authorization: Basic dXNlcjpwYXNz",
        "{'Authorization': 'Bearer eyJ0eXAi.abc.def', 'Content-Type': 'text/xml'}",
        "authorization=NTLM TlRMTVNTUAAB",
    ):
        line = formatter.format(record(text))
        assert "dXNlcjpwYXNz" not in line and "eyJ0eXAi" not in line and "TlRMTVNT" not in line
        assert MASK in line
    assert "Content-Type" in formatter.format(
        record("{'Authorization': 'Basic x', 'Content-Type': 1}")
    )


def test_json_lines_carry_the_same_fields() -> None:
    line = json.loads(JsonFormatter().format(record("room resynced", mailbox="a@b")))
    assert (line["msg"], line["mailbox"], line["level"]) == ("room resynced", "a@b", "warning")


def test_a_repeated_warning_is_held_back_then_counted() -> None:
    now = [0.0]
    limit = RepeatLimit(window_s=60, clock=lambda: now[0])
    assert limit.filter(record("database down"))
    assert not any(limit.filter(record("database down")) for _ in range(5))
    assert limit.filter(record("database down", mailbox="other"))  # another line altogether
    assert limit.filter(record("info lines pass", level=logging.INFO))
    assert limit.filter(record("info lines pass", level=logging.INFO))
    now[0] = 61.0
    again = record("database down")
    assert limit.filter(again) and again.repeated == 5
