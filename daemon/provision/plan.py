"""Provisioning a terminal: its configuration, its broker credentials and its ledger.

    now = current(root)                        # what the terminal holds already
    planned = plan(Answers(terminal="T-0042", branch="BR-017", ...), root, now)
    done = apply(planned, owner=None)          # ProvisionError before anything is written

`root` is the filesystem the terminal boots from: `/` on the terminal itself, or a
folder (an SD card image, a test's temporary tree). Paths inside the configuration are
always the terminal's own (`/etc/posd/…`, `/var/lib/posd/…`).

Every answer is checked the way `posd run` will check it before a byte is written:
the configuration with the daemon's own model (the refusal names the bad key), the
replication settings with replication's, the certificates by loading them, and an
existing ledger against the terminal id and branch. A ledger that exists is never
created again (that would start a new epoch), so provisioning twice with the same
answers changes nothing. Secrets never go into the TOML: the broker password lives in
a 0600 file that the configuration names.
"""

from __future__ import annotations

import copy
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from daemon.config.devices import EvdevScannerConfig, FilePrinterConfig, SerialPrinterConfig
from daemon.config.model import ConfigFileError, PosdConfig, parse_config
from daemon.errors import ConfigError, LedgerError
from daemon.ledger.store import read_identity
from daemon.provision.answers import NONE, Answers, Current
from daemon.provision.broker import check_replication, replication_settings
from daemon.provision.files import (
    FileToInstall,
    Owner,
    install_file,
    private_dir,
    under,
    write_atomic,
)
from daemon.provision.inventory import stable_target_kind
from daemon.provision.toml import dump

CONFIG_PATH = "/etc/posd/posd.toml"
LEDGER_PATH = "/var/lib/posd/ledger.db"
HEADER = (
    "posd terminal configuration, written by `posd provision`.\n"
    "Re-run it to change identity, broker or devices; other keys edited here are kept.\n"
    "Check by hand edits with: posd config check /etc/posd/posd.toml"
)
_PRINTER_COMMON = ("profile", "timeout_s", "status_timeout_s", "drawer_kick", "drawer_pin")
_GPIO_PARTS = ("green", "amber", "red", "buzzer", "drawer", "button")


class ProvisionError(ConfigError):
    """Provisioning would leave a terminal that does not start; one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class Plan:
    root: Path
    settings: dict[str, Any]
    text: str
    config: PosdConfig
    files: tuple[FileToInstall, ...]
    ledger_exists: bool
    warnings: tuple[str, ...]


@dataclass
class Applied:
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    ledger_epoch: str | None = None  # set when a new ledger was created


def current(root: Path) -> Current:
    """Read the existing configuration and ledger identity; refuse what cannot be read."""
    settings: dict[str, Any] = {}
    config_file = under(root, CONFIG_PATH)
    if config_file.exists():
        try:
            settings = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            raise ProvisionError(
                [f"{CONFIG_PATH}: cannot be read ({error}); fix it or move it away, then run again"]
            ) from None
    ledger_path = settings.get("ledger", {}).get("path", LEDGER_PATH)
    return Current(root, settings, ledger_identity(under(root, ledger_path), str(ledger_path)))


def ledger_identity(path: Path, shown: str) -> tuple[str, str] | None:
    """(terminal, branch) of the ledger at `path`, None when there is none; read only."""
    try:
        return read_identity(path)
    except LedgerError as error:
        raise ProvisionError(
            [f"ledger.path: {shown} exists but is not a posd ledger ({error}); move it away"]
        ) from None


# ------------------------------------------------------------------------ planning


def plan(answers: Answers, now: Current) -> Plan:
    """Check every answer and work out what to write; ProvisionError when anything
    would stop the daemon from starting."""
    problems: list[str] = []
    warnings: list[str] = []
    files: list[FileToInstall] = []
    root = now.root
    settings = copy.deepcopy(now.settings)
    settings["terminal"] = _terminal(settings.get("terminal", {}), answers)
    settings.setdefault("ledger", {}).setdefault("path", LEDGER_PATH)
    _scanner(settings, answers, root, warnings)
    _display(settings, answers)
    _printer(settings, answers, root, problems)
    _gpio(settings, answers, problems)
    if answers.attendants is not None:
        settings["attendants"] = _attendants(settings.get("attendants", []), answers.attendants)
    if answers.screen is not None and ("screen" in settings or not answers.screen):
        # A screen is served unless told otherwise: "yes" needs no table of its own.
        settings.setdefault("screen", {})["enabled"] = answers.screen
    replication_settings(settings, answers, root, problems, files)
    for key in ("scanners", "attendants"):
        if settings.get(key) == []:
            del settings[key]
    try:
        config = parse_config(settings, CONFIG_PATH)
    except ConfigFileError as error:
        raise ProvisionError(problems + error.problems) from None
    problems += check_replication(settings.get("replication"))
    problems += _check_ledger(config, now)
    if problems:
        raise ProvisionError(problems)
    warnings += _absent_devices(config, root)
    return Plan(
        root=root,
        settings=settings,
        text=dump(settings, HEADER),
        config=config,
        files=tuple(files),
        ledger_exists=now.ledger is not None,
        warnings=tuple(warnings),
    )


def _terminal(old: dict[str, Any], answers: Answers) -> dict[str, Any]:
    table = dict(old)
    table["id"] = answers.terminal
    table["branch"] = answers.branch
    if answers.mode:
        table["mode"] = answers.mode
    if answers.store_name:
        table["store_name"] = answers.store_name
    return table


def _scanner(settings: dict[str, Any], answers: Answers, root: Path, warnings: list[str]) -> None:
    path = answers.scanner
    if path is None:
        if answers.scanner_layout and _one_evdev(settings):
            settings["scanners"][0]["layout"] = answers.scanner_layout
        return
    if path == NONE:
        settings.pop("scanners", None)
        return
    kind = answers.scanner_kind or _scanner_kind(path, root)
    if kind is None:
        kind = "evdev"
        warnings.append(
            f"{path} is not attached, so its kind is a guess: keyboard mode (evdev); "
            "give --scanner-kind serial if it is a serial scanner"
        )
    old = settings.get("scanners") or []
    same = old[0] if len(old) == 1 and old[0].get("kind") == kind else {}
    entry: dict[str, Any] = {"kind": kind, "device" if kind == "evdev" else "port": path}
    entry.update({k: v for k, v in same.items() if k not in ("kind", "device", "port")})
    if kind == "evdev" and answers.scanner_layout:
        entry["layout"] = answers.scanner_layout
    settings["scanners"] = [entry]


def _one_evdev(settings: dict[str, Any]) -> bool:
    scanners = settings.get("scanners") or []
    return len(scanners) == 1 and scanners[0].get("kind") == "evdev"


def _scanner_kind(path: str, root: Path) -> Literal["evdev", "serial"] | None:
    if path.startswith("/dev/serial/"):
        return "serial"
    if path.startswith("/dev/input/") or not path.startswith("/"):
        return "evdev"  # an input link, or vendor:product
    kind = stable_target_kind(root, path)
    if kind is None:
        return None
    return "evdev" if kind == "input" else "serial"


def _display(settings: dict[str, Any], answers: Answers) -> None:
    if answers.display == NONE:
        settings.pop("display", None)
        return
    if answers.display is None and "display" not in settings:
        return
    table = dict(settings.get("display", {}))
    if answers.display is not None:
        table["port"] = answers.display
    if answers.display_model:
        table["model"] = answers.display_model
    settings["display"] = table


def printer_section(answer: str, root: Path) -> dict[str, Any]:
    """`/dev/usb/lp0` or a udev link (file), `serial:/dev/serial/by-id/…` or a tty link
    (serial), `tcp://host:9100` or `host:9100` (network)."""
    if answer.startswith("tcp://") or (not answer.startswith("/") and ":" in answer):
        host, _, port = answer.removeprefix("tcp://").rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"{answer!r}: write a network printer as tcp://host:9100")
        return {"transport": "network", "host": host, "port": int(port)}
    if answer.startswith("serial:"):
        return {"transport": "serial", "port": answer.removeprefix("serial:")}
    if not answer.startswith("/"):
        raise ValueError(
            f"{answer!r}: give a device path (/dev/posd-printer), "
            "serial:/dev/serial/by-id/… or tcp://host:9100"
        )
    if answer.startswith("/dev/serial/") or stable_target_kind(root, answer) == "serial":
        return {"transport": "serial", "port": answer}
    return {"transport": "file", "path": answer}


def _printer(settings: dict[str, Any], answers: Answers, root: Path, problems: list[str]) -> None:
    if answers.printer is None:
        return
    if answers.printer == NONE:
        settings.pop("printer", None)
        return
    try:
        table = printer_section(answers.printer, root)
    except ValueError as error:
        problems.append(f"printer: {error}")
        return
    old = settings.get("printer", {})
    table.update({k: old[k] for k in _PRINTER_COMMON if k in old})
    settings["printer"] = table


def parse_pins(text: str) -> dict[str, int]:
    """`green=17,amber=27,red=22,buzzer=18` -> pins by part."""
    pins: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, number = item.partition("=")
        if name.strip() not in _GPIO_PARTS or not number.strip().isdigit():
            raise ValueError(
                f"gpio.pins: {item!r} is not PART=PIN; parts are {', '.join(_GPIO_PARTS)}, "
                "pins are BCM numbers (e.g. green=17,amber=27,red=22,buzzer=18)"
            )
        pins[name.strip()] = int(number)
    return pins


def _gpio(settings: dict[str, Any], answers: Answers, problems: list[str]) -> None:
    if answers.gpio == NONE:
        settings.pop("gpio", None)
        return
    if answers.gpio is None and (answers.pin_factory is None or "gpio" not in settings):
        return
    table = dict(settings.get("gpio", {}))
    table["pin_factory"] = answers.pin_factory or table.get("pin_factory", "lgpio")
    if answers.gpio is not None:
        try:
            table["pins"] = parse_pins(answers.gpio)
        except ValueError as error:
            problems.append(str(error))
            return
    settings["gpio"] = table


def _attendants(
    old: list[dict[str, Any]], given: tuple[tuple[str, str], ...]
) -> list[dict[str, Any]]:
    hashes = {a.get("name"): a["pin_hash"] for a in old if a.get("pin_hash")}
    made = []
    for name, badge in given:
        entry: dict[str, Any] = {"name": name, "badge": badge}
        if name in hashes:
            entry["pin_hash"] = hashes[name]
        made.append(entry)
    return made


def _check_ledger(config: PosdConfig, now: Current) -> list[str]:
    if now.ledger is None:
        return []
    terminal, branch = now.ledger
    where = config.ledger.path
    if terminal != config.terminal.id:
        return [
            f"terminal.id: the ledger at {where} belongs to terminal {terminal} (branch {branch}), "
            f"not {config.terminal.id!r}; a ledger keeps its terminal id for life. Keep "
            f"--terminal {terminal}, or, once HQ holds every event of it, move that ledger "
            "away and provision again to start a new one"
        ]
    if branch != config.terminal.branch:
        return [
            f"terminal.branch: the ledger at {where} belongs to branch {branch}, and posd "
            f"refuses to start with branch {config.terminal.branch!r}; keep --branch {branch}"
        ]
    return []


def _absent_devices(config: PosdConfig, root: Path) -> list[str]:
    named: list[tuple[str, str]] = []
    for index, scanner in enumerate(config.scanners):
        if isinstance(scanner, EvdevScannerConfig):
            named.append((f"scanners[{index}].device", scanner.device))
        else:
            named.append((f"scanners[{index}].port", scanner.port))
    if config.display is not None:
        named.append(("display.port", config.display.port))
    if isinstance(config.printer, FilePrinterConfig):
        named.append(("printer.path", config.printer.path))
    elif isinstance(config.printer, SerialPrinterConfig):
        named.append(("printer.port", config.printer.port))
    return [
        f"{key}: {path} is not attached now; posd waits for it, and `posd doctor` checks it"
        for key, path in named
        if path.startswith("/") and not os.path.lexists(under(root, path))
    ]


# ------------------------------------------------------------------------- writing


def apply(planned: Plan, owner: Owner | None) -> Applied:
    """Write what `plan` worked out. Nothing that already holds the same bytes is
    rewritten, and an existing ledger is never touched."""
    root = planned.root
    done = Applied()
    private_dir(under(root, os.path.dirname(CONFIG_PATH)), 0o755, owner, "root")
    for item in planned.files:
        changed = install_file(under(root, item.target), item.content, item.mode, owner, item.owner)
        (done.written if changed else done.unchanged).append(item.target)
    config_file = under(root, CONFIG_PATH)
    text = planned.text.encode()
    old = config_file.read_bytes() if config_file.is_file() else None
    if old is not None and old != text:
        previous = config_file.with_name(config_file.name + ".previous")
        write_atomic(previous, old, 0o640, owner, "root")
    changed = install_file(config_file, text, 0o640, owner, "root")
    (done.written if changed else done.unchanged).append(CONFIG_PATH)
    ledger = planned.config.ledger.path
    private_dir(under(root, ledger.parent), 0o700, owner)
    if planned.ledger_exists:
        done.unchanged.append(str(ledger))
        return done
    from daemon.ledger import Ledger  # the ledger's schema, only when one is made

    created = Ledger.create(
        under(root, ledger),
        terminal=planned.config.terminal.id,
        branch=planned.config.terminal.branch,
    )
    done.ledger_epoch = created.epoch
    created.close()
    if owner is not None:
        owner.give(under(root, ledger), "posd")
    done.written.append(str(ledger))
    return done
