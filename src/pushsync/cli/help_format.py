"""The CLI's help as an operator reads it: a flag (`--all`, `--problems`) takes no value, so it
shows none. typer 0.29's rich help prints `<bool>` after every flag, as if one were expected;
this hides the placeholder for flags only (options that take a value keep theirs). The CLI calls
`hide_flag_placeholders` once as it starts: importing this module changes nothing."""

from __future__ import annotations

from typing import Any

from typer.core import TyperOption

_display_type_rich = TyperOption.display_type_rich


def _value_placeholder(self: TyperOption, ctx: Any) -> Any:
    if self.is_flag and self.metavar is None:
        return None
    return _display_type_rich(self, ctx)


def hide_flag_placeholders() -> None:
    TyperOption.display_type_rich = _value_placeholder  # type: ignore[method-assign]
