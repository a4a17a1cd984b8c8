"""Writing the configuration as TOML, keeping what a person wrote in the file.

    text = render(settings, header)               # a new file
    text = render(settings, header, previous)     # the file as it was, brought up to date

A new file puts the lane's sections in the order of the example configuration
(`systemd/posd.toml.example`), then any others. An existing file is edited in place
with tomlkit: only the values that changed are rewritten (each keeps its comment),
keys that went away are removed and new ones are added at the end of their table, so
the engineer's comments, blank lines and key order survive a re-run byte for byte.
The same settings always give the same text, which is what makes re-running `posd
provision` with the same answers leave the file untouched.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import MutableMapping
from typing import Any

import tomlkit
from tomlkit.items import AoT, Item

_CONTROL = re.compile("[\x00-\x1f\x7f]")
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
    "managers",
    "lane",
    "screen",
    "replication",
)


def render(settings: dict[str, Any], header: str = "", previous: str | None = None) -> str:
    """`settings` as TOML: `previous` (the file's text) edited to hold them, or a new
    file headed by `header` (comment lines)."""
    if previous is None:
        text = _new(settings, header)
    else:
        document = tomlkit.parse(previous)
        _sync(document, settings)
        text = tomlkit.dumps(document)
    if tomllib.loads(text) != settings:  # a value TOML cannot hold as it is
        raise ValueError("the configuration cannot be written as TOML faithfully")
    return text


def _toml_1_0(value: Any) -> Any:
    """`value` with every string that holds a control character as an item escaped the
    TOML 1.0 way (`\\u001b`): tomlkit writes `\\e`, which only TOML 1.1 readers take."""
    if isinstance(value, dict):
        return {k: _toml_1_0(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_toml_1_0(v) for v in value]
    if isinstance(value, str) and _CONTROL.search(value):
        # JSON's string escapes are TOML's, but for DEL, which JSON leaves as it is.
        text = json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
        return tomlkit.parse(f"v = {text}")["v"]
    return value


def _new(settings: dict[str, Any], header: str) -> str:
    document = tomlkit.document()
    for line in header.splitlines():
        document.add(tomlkit.comment(line) if line.strip() else tomlkit.nl())
    keys = [k for k in ORDER if k in settings] + sorted(k for k in settings if k not in ORDER)
    # Plain values before the first table, or TOML would read them as the table's.
    keys.sort(key=lambda k: _is_table(settings[k]) or _is_tables(settings[k]))
    for key in keys:
        document.add(key, _toml_1_0(settings[key]))
    return tomlkit.dumps(document)


def _sync(table: MutableMapping[str, Any], wanted: dict[str, Any]) -> None:
    """Make `table` (part of a tomlkit document) hold `wanted`, touching only what differs."""
    for key in [k for k in table if k not in wanted]:
        del table[key]
    for key, value in wanted.items():
        if key not in table:
            table[key] = _toml_1_0(value)
            continue
        old = table[key]
        if _is_table(value) and isinstance(old, MutableMapping):
            _sync(old, value)
        elif _is_tables(value) and isinstance(old, AoT) and len(old) == len(value):
            for entry, new in zip(old, value, strict=True):
                _sync(entry, new)
        elif not _same(_plain(old), value):
            table[key] = _toml_1_0(value)


def _plain(value: Any) -> Any:
    return value.unwrap() if isinstance(value, Item) else value


def _same(old: Any, new: Any) -> bool:
    """Equal and of the same types all the way down (`20` is not `20.0` in a file)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return old.keys() == new.keys() and all(_same(old[k], new[k]) for k in old)
    if isinstance(old, list) and isinstance(new, list):
        return len(old) == len(new) and all(_same(a, b) for a, b in zip(old, new, strict=True))
    return type(old) is type(new) and old == new


def _is_table(value: Any) -> bool:
    return isinstance(value, dict)


def _is_tables(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)
