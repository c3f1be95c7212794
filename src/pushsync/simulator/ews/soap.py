"""SOAP 1.1 envelopes of the EWS operations the simulator serves: read a request, write answers.

Answers carry the ServerVersionInfo header exchangelib reads its version from, and errors come
the way Exchange sends them: response messages with ResponseClass="Error", or a SOAP fault whose
detail holds an `e:ResponseCode` (ErrorServerBusy with its BackOffMilliseconds in MessageXml).
https://learn.microsoft.com/exchange/client-developer/web-service-reference/ews-xml-elements-in-exchange
https://learn.microsoft.com/exchange/client-developer/exchange-web-services/ews-throttling-in-exchange
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from pushsync.errors import MalformedNotification
from pushsync.ews.namespaces import MESSAGES, SOAP, TYPES, m, soap, t
from pushsync.ews.xml import parse_document

ERRORS = "http://schemas.microsoft.com/exchange/services/2006/errors"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
NSMAP = {"m": MESSAGES, "t": TYPES}

# Exchange Server 2016 CU23; exchangelib maps the build to its API version.
BUILD = {"MajorVersion": "15", "MinorVersion": "1", "MajorBuildNumber": "2507"}
BUILD_MINOR = "6"
DEFAULT_VERSION = "Exchange2016"


class SoapFault(Exception):
    """An error Exchange reports as a SOAP fault rather than inside a response message."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        back_off_ms: int | None = None,
        details: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.back_off_ms = back_off_ms
        self.details = details  # more t:Value Name=… entries of MessageXml


@dataclass(frozen=True, slots=True)
class EwsRequest:
    """One parsed request: the operation element and what the SOAP header said."""

    operation: str
    element: etree._Element
    version: str
    impersonated: str | None
    user: str


def parse_request(body: bytes, user: str) -> EwsRequest:
    try:
        root = parse_document(body)
    except MalformedNotification as exc:
        raise SoapFault("ErrorSchemaValidation", str(exc)) from None
    payload = root.find(soap("Body"))
    if root.tag != soap("Envelope") or payload is None or len(payload) == 0:
        raise SoapFault("ErrorSchemaValidation", "not a SOAP 1.1 envelope with a body")
    element = payload[0]
    if etree.QName(element).namespace != MESSAGES:
        raise SoapFault("ErrorSchemaValidation", "the operation is not in the messages namespace")
    header = root.find(soap("Header"))
    return EwsRequest(
        operation=etree.QName(element).localname,
        element=element,
        version=_requested_version(header),
        impersonated=_impersonated(header),
        user=user,
    )


def _requested_version(header: etree._Element | None) -> str:
    found = header.find(t("RequestServerVersion")) if header is not None else None
    return (found.get("Version") if found is not None else None) or DEFAULT_VERSION


def _impersonated(header: etree._Element | None) -> str | None:
    found = header.find(t("ExchangeImpersonation")) if header is not None else None
    if found is None:
        return None
    sid = found.find(t("ConnectingSID"))
    for name in ("PrimarySmtpAddress", "SmtpAddress", "PrincipalName"):
        value = sid.findtext(t(name)) if sid is not None else None
        if value:
            return value.strip()
    raise SoapFault("ErrorImpersonateUserDenied", "ConnectingSID names no mailbox")


def response(operation: str, version: str, messages: list[etree._Element]) -> bytes:
    """`m:{operation}Response / m:ResponseMessages / …` in an envelope."""
    wrapper = etree.Element(m(operation + "Response"), nsmap=NSMAP)
    container = etree.SubElement(wrapper, m("ResponseMessages"))
    container.extend(messages)
    return envelope(wrapper, version)


def envelope(payload: etree._Element, version: str) -> bytes:
    root = etree.Element(soap("Envelope"), nsmap={"s": SOAP})
    header = etree.SubElement(root, soap("Header"))
    info = etree.SubElement(header, t("ServerVersionInfo"), nsmap={"h": TYPES}, attrib=BUILD)
    info.set("MinorBuildNumber", BUILD_MINOR)
    info.set("Version", version)
    body = etree.SubElement(root, soap("Body"), nsmap={"xsi": XSI})
    body.append(payload)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


def message(operation: str) -> etree._Element:
    """A Success response message; the caller appends the payload."""
    element = etree.Element(m(operation + "ResponseMessage"), ResponseClass="Success", nsmap=NSMAP)
    etree.SubElement(element, m("ResponseCode")).text = "NoError"
    return element


def error_message(operation: str, code: str, text: str) -> etree._Element:
    element = etree.Element(m(operation + "ResponseMessage"), ResponseClass="Error", nsmap=NSMAP)
    etree.SubElement(element, m("MessageText")).text = text
    etree.SubElement(element, m("ResponseCode")).text = code
    etree.SubElement(element, m("DescriptiveLinkKey")).text = "0"
    return element


def fault(error: SoapFault, version: str) -> bytes:
    """A SOAP fault as Exchange sends it (HTTP 500), with the EWS code in the detail."""
    root = etree.Element(soap("Fault"), nsmap={"s": SOAP})
    code = etree.SubElement(root, "faultcode", nsmap={"a": TYPES})
    code.text = f"a:{error.code}"
    etree.SubElement(root, "faultstring").text = error.message
    detail = etree.SubElement(root, "detail")
    etree.SubElement(detail, f"{{{ERRORS}}}ResponseCode", nsmap={"e": ERRORS}).text = error.code
    etree.SubElement(detail, f"{{{ERRORS}}}Message", nsmap={"e": ERRORS}).text = error.message
    values = list(error.details)
    if error.back_off_ms is not None:
        values.insert(0, ("BackOffMilliseconds", str(error.back_off_ms)))
    if values:
        xml = etree.SubElement(detail, t("MessageXml"), nsmap={"t": TYPES})
        for name, text in values:
            etree.SubElement(xml, t("Value"), Name=name).text = text
    return envelope(root, version)


def sub(parent: etree._Element, tag: str, text: str | None = None, **attrib: str) -> etree._Element:
    """Append a child element (tag already namespaced) with optional text."""
    child = etree.SubElement(parent, tag, attrib=attrib)
    if text is not None:
        child.text = text
    return child
