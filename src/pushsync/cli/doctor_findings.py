"""What a doctor's check finds: a level, the check's name, what it saw and the fix."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from rich.markup import escape


class Level(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"


@dataclass(frozen=True, slots=True)
class Finding:
    level: Level
    check: str
    what: str
    fix: str | None = None

    def line(self) -> str:
        colour = {Level.OK: "green", Level.WARN: "yellow", Level.FAIL: "red"}[self.level]
        text = f"[{colour}]{self.level.value:<4}[/{colour}] {self.check}: {escape(self.what)}"
        return text + (f" [dim]→ fix:[/dim] {escape(self.fix)}" if self.fix else "")


def ok(check: str, what: str) -> Finding:
    return Finding(Level.OK, check, what)


def warn(check: str, what: str, fix: str) -> Finding:
    return Finding(Level.WARN, check, what, fix)


def fail(check: str, what: str, fix: str) -> Finding:
    return Finding(Level.FAIL, check, what, fix)
