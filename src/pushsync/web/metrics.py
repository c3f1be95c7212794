"""Prometheus metrics of the receiver, summed over its worker processes.

uvicorn's workers are separate processes, so the metrics use prometheus-client's multiprocess
mode: each process writes its values to files in `PROMETHEUS_MULTIPROC_DIR` (set by
`processes/receiver.py` for the whole process tree) and the admin listener adds them up on a scrape.
Without that variable (unit tests, the CLI) they are ordinary per-process metrics.

The metrics are created on first use, not at import: prometheus-client chooses between the two
modes when a metric is created, and with one worker the public listener runs in the process
that imported this module before the server set the variable.
"""

from __future__ import annotations

import asyncio
import functools
import os
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True, slots=True)
class _Metrics:
    rejected: Counter
    answered: Counter
    storage_failures: Counter
    allowed_networks: Gauge


@functools.cache
def _metrics() -> _Metrics:
    if os.environ.get(MULTIPROC_ENV) and values.ValueClass is values.MutexValue:
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    return _Metrics(
        rejected=Counter(
            "pushsync_requests_rejected_total",
            "Requests refused by the public listener, by reason; none of them wrote a row.",
            ["reason"],
        ),
        answered=Counter(
            "pushsync_notifications_answered_total",
            "Notification requests answered 200 (OK after commit, or Unsubscribe).",
        ),
        storage_failures=Counter(
            "pushsync_storage_failures_total",
            "Notification requests answered 503 because the database failed.",
        ),
        allowed_networks=Gauge(
            "pushsync_allowed_networks",
            "Networks in the address filter of the public listener.",
            multiprocess_mode="max",
        ),
    )


@functools.cache
def _rejected(reason: str) -> Counter:
    return _metrics().rejected.labels(reason)


def count_rejection(reason: str) -> None:
    _rejected(reason).inc()


class _Tally:
    """Answered requests, counted in a plain integer and added to the shared counter once per
    turn of the event loop: in multiprocess mode every `inc()` takes a lock and writes to a
    memory-mapped file, and a group commit answers tens of requests in one turn."""

    def __init__(self) -> None:
        self.pending = 0
        self._flush_on: asyncio.AbstractEventLoop | None = None  # where a flush is scheduled

    def add(self) -> None:
        # Asked of the loop already holding the flush, not `get_running_loop()`: on Python 3.11
        # that makes a getpid() system call, once per request (strace, docs/benchmarks.md).
        flush_on = self._flush_on
        if flush_on is None or not flush_on.is_running():  # none yet, or its loop ended first
            flush_on = self._flush_on = asyncio.get_running_loop()
            flush_on.call_soon(self.flush)
        self.pending += 1

    def flush(self) -> None:
        self._flush_on = None
        count, self.pending = self.pending, 0
        if count:
            _metrics().answered.inc(count)


_answered = _Tally()


def count_answered() -> None:
    """Count one request answered 200; call from the event loop of the request."""
    _answered.add()


def count_storage_failure() -> None:
    _metrics().storage_failures.inc()


def set_allowed_networks(count: int) -> None:
    _metrics().allowed_networks.set(count)


def exposition(multiproc_dir: Path | None) -> bytes:
    """The text exposition: all processes' values when a multiprocess directory is in use."""
    if multiproc_dir is None:
        _metrics()
        from prometheus_client import REGISTRY

        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(multiproc_dir))  # type: ignore[no-untyped-call]
    return generate_latest(registry)
