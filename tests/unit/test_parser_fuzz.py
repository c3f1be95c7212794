"""Property-based fuzzing of the SendNotification parser: any input gives rows or our own
MalformedNotification, never another exception (and never a hang: every example is bounded)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pushsync.errors import MalformedNotification
from pushsync.ews.send_notification import parse_send_notification

CORPUS = sorted((Path(__file__).parent.parent / "fixtures" / "ews").glob("*.xml"))
SAMPLES = [path.read_bytes() for path in CORPUS]
FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)

TAGS = [
    "soap:Envelope", "soap:Body", "m:SendNotification", "m:ResponseMessages",
    "m:SendNotificationResponseMessage", "m:Notification", "m:ResponseCode", "m:MessageXml",
    "t:SubscriptionId", "t:PreviousWatermark", "t:MoreEvents", "t:Watermark", "t:TimeStamp",
    "t:ModifiedEvent", "t:StatusEvent", "t:MovedEvent", "t:ItemId", "t:FolderId",
    "t:ParentFolderId", "t:OldItemId", "t:UnreadCount", "t:Value", "x:Other",
]  # fmt: skip
NAMESPACES = (
    'xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
    'xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" '
    'xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types" xmlns:x="urn:x"'
)
TEXTS = st.one_of(
    st.sampled_from(["", "true", "false", "2", "-1", "2026-11-24T10:00:00Z", "2026-13-99", "x"]),
    st.text(max_size=40).map(lambda s: s.replace("<", "&lt;").replace("&", "&amp;")),
    st.just("A" * 600),
)
ATTRIBUTES = st.dictionaries(
    st.sampled_from(["Id", "ChangeKey", "ResponseClass", "Name", "Version"]),
    st.sampled_from(["", "Success", "Error", "Warning", "SubscriptionId", "ID-1", "A" * 600]),
    max_size=3,
)


def render(tree: object) -> str:
    tag, attributes, children = tree  # type: ignore[misc]
    attrs = "".join(f' {k}="{v}"' for k, v in attributes.items())
    inner = children if isinstance(children, str) else "".join(render(c) for c in children)
    return f"<{tag}{attrs}>{inner}</{tag}>"


ELEMENTS = st.recursive(
    st.tuples(st.sampled_from(TAGS), ATTRIBUTES, TEXTS),
    lambda kids: st.tuples(st.sampled_from(TAGS), ATTRIBUTES, st.lists(kids, max_size=4)),
    max_leaves=30,
)


def parse_or_reject(body: bytes) -> None:
    try:
        rows = parse_send_notification(body, remote_addr="192.0.2.1")
    except MalformedNotification:
        return
    assert rows, "parsed without rows"
    for row in rows:
        assert row.subscription_id and len(row.subscription_id) <= 512


@FUZZ
@given(st.binary(max_size=4096))
def test_any_bytes(body: bytes) -> None:
    parse_or_reject(body)


@FUZZ
@given(ELEMENTS)
def test_any_tree_of_ews_elements(tree: object) -> None:
    body = render(("soap:Envelope", {}, [("soap:Body", {}, [tree])]))
    parse_or_reject(body.replace("<soap:Envelope", f"<soap:Envelope {NAMESPACES}", 1).encode())


@FUZZ
@given(
    st.sampled_from(SAMPLES),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8),
)
def test_corpus_with_flipped_bytes(sample: bytes, flips: list[tuple[int, int]]) -> None:
    body = bytearray(sample)
    for position, value in flips:
        body[position % len(body)] = value
    parse_or_reject(bytes(body))


@FUZZ
@given(st.sampled_from(SAMPLES), st.integers(0, 10_000), st.binary(max_size=64))
def test_corpus_cut_and_spliced(sample: bytes, cut: int, junk: bytes) -> None:
    cut %= len(sample)
    parse_or_reject(sample[:cut] + junk + sample[cut:])
    parse_or_reject(sample[:cut])
