"""Writing a configuration back out as TOML, the same bytes for the same settings.

`dump(settings)` puts the lane's sections in the order of the example configuration
(`systemd/posd.toml.example`), then any others, and checks that the text reads back
as exactly `settings`. The same settings always give the same text, which is what makes
re-running `posd provision` with the same answers leave the file untouched.
"""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any

ORDER = (
    "terminal",
    "ledger",
    "logging",
    "scanners",
    "display",
    "printer",
    "gpio",
    "api",
    "barcode",
    "attendants",
    "lane",
    "replication",
)
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def dump(settings: dict[str, Any], header: str = "") -> str:
    """`settings` as TOML, preceded by `header` (comment lines)."""
    keys = [k for k in ORDER if k in settings] + sorted(k for k in settings if k not in ORDER)
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    scalars = [k for k in keys if not _is_table(settings[k]) and not _is_tables(settings[k])]
    lines.extend(f"{_key(k)} = {_value(settings[k])}" for k in scalars)
    for key in keys:
        value = settings[key]
        if _is_table(value):
            _table(lines, (key,), value)
        elif _is_tables(value):
            for entry in value:
                lines.append("")
                lines.append(f"[[{_key(key)}]]")
                lines.extend(f"{_key(k)} = {_value(v)}" for k, v in entry.items())
    text = "\n".join(lines).strip("\n") + "\n"
    if tomllib.loads(text) != settings:  # a value this writer cannot express
        raise ValueError("the configuration cannot be written as TOML faithfully")
    return text


def _table(lines: list[str], path: tuple[str, ...], table: dict[str, Any]) -> None:
    lines.append("")
    lines.append(f"[{'.'.join(_key(p) for p in path)}]")
    inner = [(k, v) for k, v in table.items() if _is_table(v)]
    lines.extend(f"{_key(k)} = {_value(v)}" for k, v in table.items() if not _is_table(v))
    for key, value in inner:
        _table(lines, (*path, key), value)


def _is_table(value: Any) -> bool:
    return isinstance(value, dict)


def _is_tables(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # JSON string escapes are TOML basic-string escapes.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    raise ValueError(f"{value!r} cannot be written in a configuration file")
