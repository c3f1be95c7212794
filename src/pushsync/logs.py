"""Log lines an operator can read and a machine can parse: `key=value` pairs (or one JSON
object) a line, one event a line.

Every line passes two guards before it is written: the configured secrets and any
`Authorization` header value are masked (a library logging a request at DEBUG must not leak
them), and a warning repeated word for word is written once a minute with the count of the
lines held back, not thousands of times while a database is down.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from pushsync.settings import Settings

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's coloured duplicate of msg
    "taskName",
}
MASK = "**********"
# `Authorization: Basic …`, `'Authorization': 'Bearer …'` (a headers dict), `authorization=…`
_AUTHORIZATION = re.compile(
    r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(basic|bearer|ntlm|negotiate)?\s*[^\s'\",}]+"
)
# libraries whose every request would otherwise be a line (and the URL carries the token)
QUIET_LOGGERS = ("httpx", "httpcore", "hpack")
REPEAT_WINDOW_S = 60.0


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    stamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    fields: dict[str, Any] = {
        "ts": stamp,
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    fields |= {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
    return fields


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = [f"{key}={_quote(str(value))}" for key, value in _fields(record).items()]
        if record.exc_info:
            parts.append(f"exc={_quote(self.formatException(record.exc_info))}")
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    """One JSON object a line, the same keys as the key=value lines."""

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        return json.dumps(fields, default=str, ensure_ascii=False)


def _quote(value: str) -> str:
    if value and not any(c in value for c in ' "=\n\t'):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


class Redacting(logging.Formatter):
    """Wraps a formatter: masks each secret as it may appear in a line (plain, quoted,
    URL-encoded, JSON-escaped) and the value of any Authorization header."""

    def __init__(self, inner: logging.Formatter, secrets: Iterable[str]) -> None:
        super().__init__()
        self._inner = inner
        self._secrets: list[str] = []  # longest first: no half masks
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        forms = {form for secret in secrets if len(secret) >= 4 for form in _forms(secret)}
        self._secrets = sorted(set(self._secrets) | forms, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(self._inner.format(record))

    def redact(self, line: str) -> str:
        for secret in self._secrets:
            line = line.replace(secret, MASK)
        return _AUTHORIZATION.sub(lambda m: f"{m[1]}{m[2] + ' ' if m[2] else ''}{MASK}", line)


def _forms(secret: str) -> set[str]:
    escaped = secret.replace("\\", "\\\\").replace('"', '\\"')
    return {secret, escaped, quote(secret, safe=""), json.dumps(secret)[1:-1]}


class RepeatLimit(logging.Filter):
    """A warning (or worse) identical to one written less than `window_s` ago is held back;
    the next one written says how many were (`repeated=N`)."""

    def __init__(self, window_s: float = REPEAT_WINDOW_S, clock: Any = time.monotonic) -> None:
        super().__init__()
        self._window_s = window_s
        self._clock = clock
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        extras = sorted((k, str(v)) for k, v in record.__dict__.items() if k not in _STANDARD)
        key = (record.name, record.levelno, f"{record.getMessage()} {extras}")
        now = self._clock()
        written_at, held = self._seen.get(key, (None, 0))
        if written_at is not None and now - written_at < self._window_s:
            self._seen[key] = (written_at, held + 1)
            return False
        if len(self._seen) > 1000:  # many distinct failures: forget the old ones
            self._seen.clear()
        self._seen[key] = (now, 0)
        if held:
            record.repeated = held
        return True


def configure_logging(
    level: str = "INFO",
    file: Path | None = None,
    *,
    json_lines: bool = False,
    secrets: Iterable[str] = (),
    http_requests: bool = False,
) -> None:
    """One line per event, to stderr or (the demo, whose screen is a live view) a file."""
    handler: logging.Handler = (
        logging.FileHandler(file) if file else logging.StreamHandler(sys.stderr)
    )
    inner = JsonFormatter() if json_lines else KeyValueFormatter()
    handler.setFormatter(Redacting(inner, secrets))
    handler.addFilter(RepeatLimit())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if http_requests else logging.WARNING)


def add_secrets(secrets: Iterable[str]) -> None:
    """Mask these too, in every line from now on (secrets made after logging was set up)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler.formatter, Redacting):
            handler.formatter.add(secrets)


def configure_from(settings: Settings, file: Path | None = None) -> None:
    """Logging as the settings say, masking every secret they hold."""
    configure_logging(
        settings.log_level,
        file,
        json_lines=settings.log_format == "json",
        secrets=secret_values(settings),
        http_requests=settings.log_http_requests,
    )


def secret_values(settings: Settings) -> list[str]:
    from pydantic import SecretStr

    values = [getattr(settings, name) for name in type(settings).model_fields]
    return [value.get_secret_value() for value in values if isinstance(value, SecretStr)]
