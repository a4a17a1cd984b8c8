"""What the engineer answered and what the terminal holds now: the two inputs of a plan.

None in an answer keeps what the terminal has; `"none"` removes a device (or
replication). `Current` is read from the terminal's root by `plan.current`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Login = Literal["password", "certificate"]
NONE = "none"  # the answer that removes a device, or replication


@dataclass(frozen=True)
class Answers:
    """What the engineer answered. None keeps what the terminal has; `"none"` removes
    a device (or replication)."""

    terminal: str
    branch: str
    mode: str | None = None
    store_name: str | None = None
    hq_url: str | None = None
    login: Login | None = None
    username: str | None = None
    password_file: Path | None = None  # a file holding the password, to install
    password: str | None = None  # typed at the prompt; never echoed, never in the TOML
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    scanner: str | None = None
    scanner_kind: str | None = None  # a scanner kind's name (`evdev`); None: from the device
    scanner_layout: str | None = None
    display: str | None = None
    display_model: str | None = None
    printer: str | None = None
    gpio: str | None = None  # "green=17,amber=27,red=22,buzzer=18" or "none"
    pin_factory: str | None = None
    attendants: tuple[tuple[str, str], ...] | None = None  # (name, badge)
    screen: bool | None = None  # the terminal has a screen for the lane screen


@dataclass(frozen=True)
class Current:
    """What the terminal under `root` holds now."""

    root: Path
    settings: dict[str, Any]  # the configuration file as read ({} when there is none)
    ledger: tuple[str, str] | None  # (terminal, branch) of an existing ledger
    text: str | None = None  # the configuration file's text, comments and all

    @property
    def configured(self) -> bool:
        return bool(self.settings)

    def value(self, section: str, key: str) -> Any:
        table = self.settings.get(section)
        return table.get(key) if isinstance(table, dict) else None
