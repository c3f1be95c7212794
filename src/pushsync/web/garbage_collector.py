"""The receiver's garbage-collector settings, applied once a worker process has started.

A request leaves almost no reference cycles, but it allocates many objects, and with CPython's
default young threshold (700) the collector runs every few requests and walks, each time, the
objects start-up left alive. So, after start-up, those objects are moved out of its sight
(`gc.freeze`) and the young generation is collected less often. This earns its place: the
collector was 3-4 % of a receiver's profile, and taking this out cost more than that in CPU
per request (docs/benchmarks.md).
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000  # allocations between young collections; CPython's default is 700


def settle() -> None:
    """Collect once, freeze what is alive, and raise the young threshold (per process)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
