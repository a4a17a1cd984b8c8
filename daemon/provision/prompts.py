"""The questions `posd provision` asks, with what the terminal already has as defaults.

Each question is asked only when its option was not given on the command line, and
never with `--yes`. The defaults are the terminal's current answers (its configuration,
its ledger) or what is plugged in (the udev names, a device that is clearly a scanner),
so pressing Enter through a re-run changes nothing.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click

from daemon.drivers.display.kind import DISPLAY
from daemon.drivers.kinds import KINDS
from daemon.drivers.printer_transport import PRINTER
from daemon.drivers.registry import DeviceKinds, Role
from daemon.drivers.scanner import SCANNER
from daemon.provision.answers import NONE, Answers, Current
from daemon.provision.files import under
from daemon.provision.inventory import Inventory

_KEEP = ""  # the answer that keeps a file already installed


@dataclasses.dataclass
class Given:
    """The command line's options, before questions fill the gaps."""

    values: dict[str, Any]
    ask: bool  # False with --yes

    def get(self, name: str) -> Any:
        return self.values.get(name)


def current_answers(
    now: Current, found: Inventory, kinds: DeviceKinds = KINDS
) -> dict[str, str | None]:
    """Defaults: what the terminal is configured with, else what is attached."""
    ledger = now.ledger
    scanners = now.settings.get("scanners") or []
    scanner = None
    if scanners:
        scanner = _configured(kinds, SCANNER, scanners[0])
    elif found.named("/dev/posd-scanner"):
        scanner = "/dev/posd-scanner"
    elif (suggested := found.suggested_scanner()) is not None:
        scanner = suggested.name
    display = _configured(kinds, DISPLAY, now.settings.get("display")) or (
        "/dev/posd-display" if found.named("/dev/posd-display") else None
    )
    return {
        "terminal": now.value("terminal", "id") or (ledger[0] if ledger else None),
        "branch": now.value("terminal", "branch") or (ledger[1] if ledger else None),
        "mode": now.value("terminal", "mode") or "cashier",
        "scanner": scanner or NONE,
        "display": display or NONE,
        "display_model": now.value("display", "model") or "epson",
        "printer": _printer_answer(now.settings.get("printer"), found, kinds) or NONE,
        "hq_url": now.value("replication", "url") or NONE,
        "username": now.value("replication", "username"),
    }


def _printer_answer(
    table: dict[str, Any] | None, found: Inventory, kinds: DeviceKinds
) -> str | None:
    if not table:
        return "/dev/posd-printer" if found.named("/dev/posd-printer") else None
    return _configured(kinds, PRINTER, table)


def _configured(kinds: DeviceKinds, role: Role[Any, Any], table: object) -> str | None:
    """The answer that gives the configured section `table` of `role`, by its kind."""
    if not isinstance(table, dict):
        return None
    if role.tag is None:
        kind = next(iter(kinds.of(role)), None)
    else:
        kind = kinds.named(role, table.get(role.tag))
    return kind.answer_for(table) if kind is not None else None


def answers(given: Given, now: Current, found: Inventory, kinds: DeviceKinds = KINDS) -> Answers:
    """Fill in what the command line left out: from the terminal, or by asking."""
    defaults = current_answers(now, found, kinds)
    values = dict(given.values)

    def ask(name: str, text: str, **options: Any) -> Any:
        if values.get(name) is not None:
            return values[name]
        default = options.pop("default", defaults.get(name))
        if not given.ask:
            return default
        return click.prompt(text, default=default, **options)

    terminal = ask("terminal", "Terminal id (unique in the chain, e.g. T-0042)")
    branch = ask("branch", "Branch (store) id")
    if not terminal or not branch:
        missing = "--terminal" if not terminal else "--branch"
        raise click.UsageError(
            f"{missing} is required: this terminal has no configuration or ledger to take it from"
        )
    mode = ask("mode", "Mode", type=click.Choice(["cashier", "self_checkout"]))
    attendants = values.get("attendants") or None
    if (
        mode == "self_checkout"
        and not attendants
        and given.ask
        and not now.settings.get("attendants")
    ):
        badge = click.prompt("Attendant who may release the lane, as NAME=BADGE")
        attendants = (badge,)
    scanner = ask("scanner", "Scanner (a name listed above, vendor:product, or none)")
    display = ask("display", "Customer display port (or none)")
    display_model = None
    if display != NONE:
        display_model = ask(
            "display_model", "Display command set", type=click.Choice(["epson", "cd5220"])
        )
    printer = ask(
        "printer", "Receipt printer (/dev/… path, serial:/dev/…, tcp://host:9100, or none)"
    )
    screen = values.get("screen")
    if screen is None and given.ask:
        screen = click.prompt(
            "Does this terminal have a screen (touch screen or monitor) for the lane screen?",
            type=bool,
            default=now.value("screen", "enabled") is not False,
        )
    hq_url = ask("hq_url", "HQ broker URL (mqtts://host:8883, or none)")
    broker = _broker(values, given, now, hq_url, terminal, defaults) if hq_url != NONE else {}
    return Answers(
        terminal=terminal,
        branch=branch,
        mode=mode,
        store_name=values.get("store_name"),
        hq_url=hq_url,
        scanner=scanner,
        scanner_kind=values.get("scanner_kind"),
        scanner_layout=values.get("layout"),
        display=display,
        display_model=display_model,
        printer=printer,
        gpio=values.get("gpio"),
        pin_factory=values.get("pin_factory"),
        attendants=_pairs(attendants) if attendants else None,
        screen=screen,
        **broker,
    )


def _broker(
    values: dict[str, Any],
    given: Given,
    now: Current,
    hq_url: str,
    terminal: str,
    defaults: dict[str, str | None],
) -> dict[str, Any]:
    """The broker login: a password (kept in a 0600 file) or a client certificate."""
    found: dict[str, Any] = {}
    login = values.get("login")
    if values.get("cert_file") or values.get("key_file"):
        login = "certificate"
    elif values.get("username") or values.get("password_file"):
        login = "password"
    ca_file = values.get("ca_file")
    if given.ask and ca_file is None:
        ca_file = _file_question(
            "CA certificate that signed the broker's (blank: the system's CAs)",
            now,
            now.value("replication", "ca_file"),
        )
    found["ca_file"] = ca_file
    if not given.ask:
        found.update(
            login=login,
            username=values.get("username"),
            password_file=values.get("password_file"),
            cert_file=values.get("cert_file"),
            key_file=values.get("key_file"),
        )
        return found
    if login is None:
        had = "certificate" if now.value("replication", "cert_file") else "password"
        login = click.prompt(
            "Log in to the broker with", type=click.Choice(["password", "certificate"]), default=had
        )
    found["login"] = login
    if login == "certificate":
        found["cert_file"] = values.get("cert_file") or _file_question(
            "Client certificate file", now, now.value("replication", "cert_file")
        )
        found["key_file"] = values.get("key_file") or _file_question(
            "Client key file", now, now.value("replication", "key_file")
        )
        return found
    found["username"] = values.get("username") or click.prompt(
        "Broker username", default=defaults.get("username") or terminal
    )
    if values.get("password_file"):
        found["password_file"] = values["password_file"]
        return found
    kept = now.value("replication", "password_file")
    have = bool(kept) and under(now.root, kept).is_file()
    password = click.prompt(
        "Broker password" + (" (blank keeps the current one)" if have else ""),
        hide_input=True,
        confirmation_prompt=True,
        default=_KEEP if have else None,
        show_default=False,
    )
    found["password"] = password if password != _KEEP else None
    return found


def _file_question(text: str, now: Current, installed: str | None) -> Path | None:
    """A file to install; blank keeps the one installed (or means none)."""
    if installed and under(now.root, installed).is_file():
        text += f" (blank keeps {installed})"
    answer = click.prompt(text, default=_KEEP, show_default=False)
    return Path(answer).expanduser() if answer else None


def _pairs(items: tuple[str, ...] | list[str]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in items:
        name, sep, badge = item.partition("=")
        if not sep or not name.strip() or not badge.strip():
            raise click.BadParameter(
                f"{item!r}: write an attendant as NAME=BADGE, e.g. Mia=BADGE-0042",
                param_hint="--attendant",
            )
        pairs.append((name.strip(), badge.strip()))
    return tuple(pairs)
