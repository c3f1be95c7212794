"""The hardened XML parser refuses DTDs before libxml2 sees them and never loads anything."""

from __future__ import annotations

import subprocess
import sys

import pytest
from lxml import etree

from pushsync.errors import MalformedNotification
from pushsync.ews.xml import _PARSER, parse_document


@pytest.mark.parametrize(
    "body",
    [
        b'<!DOCTYPE r [<!ENTITY % ext SYSTEM "file:///dev/zero"> %ext;]><r/>',
        b'<!DOCTYPE r SYSTEM "file:///etc/passwd"><r/>',
        b'<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY a "b">]><r>&a;</r>',
        '<!DOCTYPE r [<!ENTITY a "b">]><r>&a;</r>'.encode("utf-16"),  # hides from a byte scan
        b'<?xml version="1.0" encoding="UTF-7"?>+ADw-!DOCTYPE r+AD4-<r/>',
    ],
)
def test_doctype_in_any_disguise_is_refused(body: bytes) -> None:
    with pytest.raises(MalformedNotification):
        parse_document(body)


def test_the_parser_itself_loads_no_external_parameter_entity() -> None:
    """Defence in depth behind the DOCTYPE scan: libxml2 would otherwise read /dev/zero for
    ever. Run in a child so a regression fails the test instead of hanging the suite."""
    code = (
        "from lxml import etree\n"
        "from pushsync.ews.xml import _PARSER\n"
        "body = b'<!DOCTYPE r [<!ENTITY % x SYSTEM \"file:///dev/zero\"> %x;]><r/>'\n"
        "try:\n"
        "    etree.fromstring(body, _PARSER)\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.stdout.strip() == "MalformedNotification", done.stderr


def test_plain_utf8_still_parses() -> None:
    root = etree.fromstring('<?xml version="1.0" encoding="utf-8"?><r>é</r>'.encode(), _PARSER)
    assert root.text == "é"
