"""Opaque identifiers shaped like Exchange's: ItemIds, ChangeKeys, watermarks, subscription ids.

Real ids are base64 of binary structures; clients must treat them as opaque, case-sensitive
strings. The simulator keeps that shape (and length: a room ItemId is ~150 characters) so the
code under test meets realistic values, and decodes only its own watermarks.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import random
import struct
from dataclasses import dataclass

_WATERMARK_VERSION = b"\x01\x00\x00\x00"
_SYNC_STATE_VERSION = b"\x02\x00\x00\x00"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def mailbox_guid(email: str) -> bytes:
    """A stable 16-byte mailbox GUID derived from the address."""
    return hashlib.blake2b(email.lower().encode(), digest_size=16).digest()


def item_id(rng: random.Random, mailbox: str) -> str:
    """A fresh ItemId: mailbox GUID + entry id bytes, like the 'AAMkA…' ids Exchange gives."""
    return _b64(b"\x00\x03\x24\x00" + mailbox_guid(mailbox) + rng.randbytes(90))


def occurrence_id(master_id: str, generation: int, original_start: str) -> str:
    """The id of one occurrence; changes when the series pattern changes (new generation)."""
    seed = f"{master_id}|{generation}|{original_start}".encode()
    return _b64(b"\x01\x03\x24\x00" + hashlib.blake2b(seed, digest_size=64).digest())


def id_mailbox_guid(value: str) -> bytes | None:
    """The mailbox GUID inside a folder or item id made here (None if it is not one)."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw[4:20] if len(raw) >= 20 else None


def folder_id(mailbox: str, name: str) -> str:
    seed = f"{mailbox.lower()}|{name}".encode()
    return _b64(b"\x00\x01\x2e\x00" + mailbox_guid(mailbox) + hashlib.blake2b(seed).digest()[:30])


def change_key(rng: random.Random) -> str:
    return _b64(b"\x0f\x00\x00\x00\x16\x00\x00\x00" + rng.randbytes(22))


def subscription_id(rng: random.Random, mailbox: str) -> str:
    return _b64(b"\x15\x00" + mailbox_guid(mailbox) + rng.randbytes(24))


def watermark(mailbox: str, sequence: int, tick: int = 0) -> str:
    """Mailbox GUID + event counter: the next events after it are those with a higher counter.

    `tick` tells StatusEvents apart: each carries a watermark of its own, as Exchange's do, that
    resumes at the same place as the last event's.
    """
    packed = struct.pack("<QI", sequence, tick)
    return _b64(_WATERMARK_VERSION + mailbox_guid(mailbox) + packed)


def parse_watermark(value: str) -> tuple[bytes, int] | None:
    """(mailbox GUID, counter) of a watermark this simulator issued, or None."""
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        return None
    if len(raw) != 32 or not raw.startswith(_WATERMARK_VERSION):
        return None
    sequence: int = struct.unpack("<Q", raw[20:28])[0]
    return raw[4:20], sequence


@dataclass(frozen=True, slots=True)
class SyncState:
    """What a SyncFolderItems state this simulator issued says."""

    mailbox_guid: bytes
    sequence: int  # the event counter every change up to which the client has seen
    epoch: int  # the mailbox's sync epoch when issued (a newer epoch forgets older states)
    after: str | None  # a first sync's listing: the last item id returned so far


def sync_state(mailbox: str, sequence: int, epoch: int = 0, after: str | None = None) -> str:
    """SyncFolderItems state: like a watermark, but its own prefix so the two never mix."""
    head = _SYNC_STATE_VERSION + mailbox_guid(mailbox) + struct.pack("<QI", sequence, epoch)
    return _b64(head + (after or "").encode())


def parse_sync_state(value: str) -> SyncState | None:
    try:
        raw = base64.b64decode(value, validate=True)
        after = raw[32:].decode("ascii") or None
    except ValueError:
        return None
    if len(raw) < 32 or not raw.startswith(_SYNC_STATE_VERSION):
        return None
    sequence, epoch = struct.unpack("<QI", raw[20:32])
    return SyncState(raw[4:20], sequence, epoch, after)
