"""The XML namespaces of EWS SOAP messages. Parse by namespace, never by prefix.

https://learn.microsoft.com/exchange/client-developer/web-service-reference/ews-xml-elements-in-exchange
"""

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
MESSAGES = "http://schemas.microsoft.com/exchange/services/2006/messages"
TYPES = "http://schemas.microsoft.com/exchange/services/2006/types"

SEND_NOTIFICATION_ACTION = MESSAGES + "/SendNotification"


def soap(tag: str) -> str:
    return f"{{{SOAP}}}{tag}"


def m(tag: str) -> str:
    return f"{{{MESSAGES}}}{tag}"


def t(tag: str) -> str:
    return f"{{{TYPES}}}{tag}"
