"""The one hardened XML parser for everything that arrives from outside.

No DTD is loaded, no entity is expanded, nothing is fetched from the network, and libxml2's own
limits on depth (256 without XML_PARSE_HUGE) and text size stay on. A document that declares a
DOCTYPE at all is refused: Exchange never sends one, so its presence means someone is probing.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from pushsync.errors import MalformedNotification

_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_comments=True,
    remove_pis=True,
    collect_ids=False,
)


def parse_document(body: bytes) -> etree._Element:
    """Parse untrusted bytes into an element tree or raise MalformedNotification."""
    if not body:
        raise MalformedNotification("empty body")
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise MalformedNotification(f"not well-formed XML: {exc}") from None
    docinfo: Any = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise MalformedNotification("a DOCTYPE is not allowed")
    return root
