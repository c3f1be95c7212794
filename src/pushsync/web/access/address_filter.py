"""The sources allowed to post notifications: Microsoft's Exchange ranges plus operator networks.

The filter holds one `NetworkSet` and replaces it whole when `ipranges refresh` has written a
new list, so a request sees either the old set or the new one. `reload_if_changed` is cheap
(one `stat`) and is called from a background task of each receiver process.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from pushsync.web.access.ipranges import Ranges, current_path, load_ranges
from pushsync.web.access.networks import NetworkSet

log = logging.getLogger("pushsync.web.access")
_MAX_DECIDED = 4096  # addresses remembered at most; then forgotten all at once


class AddressFilter:
    def __init__(
        self,
        extra: NetworkSet,
        *,
        microsoft_ranges: bool,
        state_dir: Path,
        instance: str,
    ) -> None:
        self._extra = extra
        self._use_microsoft = microsoft_ranges
        self._path = current_path(state_dir, instance)
        self._state_dir = state_dir
        self._instance = instance
        self._stamp: tuple[int, int] | None = None
        self.ranges: Ranges | None = None
        self.allowed = extra
        self._decided: dict[object, bool] = {}  # cleared with every new `allowed`
        if microsoft_ranges:
            self._load()

    def __contains__(self, address: object) -> bool:
        # The decisions for the current set, by address: a sender posts again and again, and
        # a lookup here is a dict hit instead of parsing the address text each time.
        decided = self._decided.get(address)
        if decided is None:
            if len(self._decided) >= _MAX_DECIDED:
                self._decided = {}
            decided = self._decided[address] = address in self.allowed
        return decided

    def _load(self) -> None:
        self._stamp = _stamp(self._path)
        ranges = load_ranges(self._state_dir, self._instance)
        self.allowed = ranges.network_set() | self._extra  # one reference swap
        self._decided = {}
        self.ranges = ranges

    def reload_if_changed(self) -> bool:
        if not self._use_microsoft or _stamp(self._path) == self._stamp:
            return False
        try:
            self._load()
        except Exception:
            log.exception("address ranges not reloaded; keeping the previous list")
            return False
        log.info("address ranges reloaded", extra=self.describe())
        return True

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {"operator_networks": len(self._extra)}
        if self.ranges is not None:
            described |= {f"microsoft_{k}": v for k, v in self.ranges.describe().items()}
        return described


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_mtime_ns, status.st_ino
