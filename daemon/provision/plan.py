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

Which kind of device an answer names (`/dev/input/by-id/…` is a keyboard-mode scanner,
`tcp://host:9100` a network printer) is for the device kinds to say
(`DeviceKind.recognise`), and so are the keys a kind's section takes for it.
"""

from __future__ import annotations

import copy
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daemon.config.model import ConfigFileError, PosdConfig, parse_config
from daemon.drivers.display.kind import DISPLAY
from daemon.drivers.gpio import GpioPinsConfig
from daemon.drivers.kinds import KINDS
from daemon.drivers.printer_transport import PRINTER
from daemon.drivers.registry import Attached, DeviceKind, DeviceKinds, DeviceRole
from daemon.drivers.scanner import SCANNER
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
from daemon.provision.toml import render

CONFIG_PATH = "/etc/posd/posd.toml"
LEDGER_PATH = "/var/lib/posd/ledger.db"
HEADER = (
    "posd terminal configuration, written by `posd provision`.\n"
    "Re-run it to change identity, broker or devices; your comments and other keys stay.\n"
    "Check by hand edits with: posd config check /etc/posd/posd.toml"
)
_GPIO_PARTS = tuple(GpioPinsConfig.model_fields)


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
class ProvisionApplied:
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    ledger_epoch: str | None = None  # set when a new ledger was created


def current(root: Path) -> Current:
    """Read the existing configuration and ledger identity; refuse what cannot be read."""
    settings: dict[str, Any] = {}
    text = None
    config_file = under(root, CONFIG_PATH)
    if config_file.exists():
        try:
            text = config_file.read_text(encoding="utf-8")
            settings = tomllib.loads(text)
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            raise ProvisionError(
                [f"{CONFIG_PATH}: cannot be read ({error}); fix it or move it away, then run again"]
            ) from None
    ledger_path = settings.get("ledger", {}).get("path", LEDGER_PATH)
    ledger = ledger_identity(under(root, ledger_path), str(ledger_path))
    return Current(root, settings, ledger, text)


def ledger_identity(path: Path, shown: str) -> tuple[str, str] | None:
    """(terminal, branch) of the ledger at `path`, None when there is none; read only."""
    try:
        return read_identity(path)
    except LedgerError as error:
        raise ProvisionError(
            [f"ledger.path: {shown} exists but is not a posd ledger ({error}); move it away"]
        ) from None


# ------------------------------------------------------------------------ planning


def plan(answers: Answers, now: Current, kinds: DeviceKinds = KINDS) -> Plan:
    """Check every answer and work out what to write; ProvisionError when anything
    would stop the daemon from starting. `kinds` are the device kinds to recognise."""
    problems: list[str] = []
    warnings: list[str] = []
    files: list[FileToInstall] = []
    root = now.root
    settings = copy.deepcopy(now.settings)
    settings["terminal"] = _terminal(settings.get("terminal", {}), answers)
    settings.setdefault("ledger", {}).setdefault("path", LEDGER_PATH)
    _scanner(settings, answers, root, warnings, problems, kinds)
    _display(settings, answers, kinds)
    _printer(settings, answers, root, problems, kinds)
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
    problems += _check_ledger(settings["terminal"], settings["ledger"].get("path"), now)
    try:
        config = parse_config(settings, CONFIG_PATH, kinds)
    except ConfigFileError as error:
        raise ProvisionError(problems + error.problems) from None
    problems += check_replication(settings.get("replication"))
    if problems:
        raise ProvisionError(problems)
    warnings += _absent_devices(config, root, kinds)
    try:
        text = render(settings, HEADER, now.text)
    except ValueError as error:  # a value TOML cannot hold: refused, never half-written
        raise ProvisionError([f"{CONFIG_PATH}: {error}"]) from None
    return Plan(
        root=root,
        settings=settings,
        text=text,
        config=config,
        files=tuple(files),
        ledger_exists=now.ledger is not None,
        warnings=tuple(warnings),
    )


# Which answer writes each key of posd.toml, so that a problem with a key is put to the
# question that can fix it (`posd provision` asks that one again). A problem belongs to
# the answer with the longest key it names: `scanners[0].layout` is the layout's,
# `scanners[0].device` the scanner's. The broker's URL is checked with its whole table.
ANSWER_KEYS: dict[str, tuple[str, ...]] = {
    "terminal": ("terminal.id",),
    "branch": ("terminal.branch",),
    "store_name": ("terminal.store_name",),
    "mode": ("terminal.mode",),
    "attendants": ("attendants",),
    "scanner": ("scanners",),
    "scanner_kind": ("scanners[0].kind",),
    "layout": ("scanners[0].layout",),
    "display": ("display",),
    "display_model": ("display.model",),
    "printer": ("printer",),
    "gpio": ("gpio",),
    "pin_factory": ("gpio.pin_factory",),
    "hq_url": ("replication", "replication.url"),
    "username": ("replication.username",),
    "password": ("replication.password_file",),
    "password_file": ("replication.password_file",),
    "ca_file": ("replication.ca_file",),
    "cert_file": ("replication.cert_file",),
    "key_file": ("replication.key_file",),
}


def answer_problems(
    name: str, answers: Answers, now: Current, kinds: DeviceKinds = KINDS
) -> list[str]:
    """What is wrong with the answer `name` (a key of `ANSWER_KEYS`) among `answers`:
    the problems `plan` finds in the keys that answer writes, worded as `posd run` and
    `posd config check` word them. Problems of other answers are not this one's."""
    try:
        plan(answers, now, kinds)
    except ProvisionError as refused:
        return [problem for problem in refused.problems if name in answers_for(problem)]
    return []


def answers_for(problem: str) -> tuple[str, ...]:
    """The answers that can put `problem` right (none: a key no question writes, such
    as one edited by hand)."""
    best = 0
    owners: tuple[str, ...] = ()
    for name, keys in ANSWER_KEYS.items():
        for key in keys:
            if _names(problem, key) and len(key) >= best:
                owners = (*owners, name) if len(key) == best else (name,)
                best = len(key)
    return owners


def _names(problem: str, key: str) -> bool:
    return problem.startswith(key) and problem[len(key) : len(key) + 1] in (":", ".", "[")


def scanner_kind(
    answer: str, named: str | None, root: Path, kinds: DeviceKinds = KINDS
) -> DeviceKind[Any, Any] | None:
    """The kind of scanner an answer to "which scanner?" gives (None: none, or a kind
    name that is not registered)."""
    if answer == NONE:
        return None
    return _scanner_kind(answer, named, root, [], [], kinds)


def takes_layout(kind: DeviceKind[Any, Any] | None) -> bool:
    """Whether a scanner of `kind` is decoded with a keyboard layout (keyboard mode)."""
    return kind is not None and "layout" in kind.section.model_fields


def _terminal(old: dict[str, Any], answers: Answers) -> dict[str, Any]:
    table = dict(old)
    table["id"] = answers.terminal
    table["branch"] = answers.branch
    if answers.mode:
        table["mode"] = answers.mode
    if answers.store_name:
        table["store_name"] = answers.store_name
    return table


def _scanner(
    settings: dict[str, Any],
    answers: Answers,
    root: Path,
    warnings: list[str],
    problems: list[str],
    kinds: DeviceKinds,
) -> None:
    path = answers.scanner
    if path is None:
        if answers.scanner_layout and _one_with_layout(settings, kinds):
            settings["scanners"][0]["layout"] = answers.scanner_layout
        return
    if path == NONE:
        settings.pop("scanners", None)
        return
    kind = _scanner_kind(path, answers.scanner_kind, root, warnings, problems, kinds)
    if kind is None:
        return
    old = settings.get("scanners") or []
    same = old[0] if len(old) == 1 and old[0].get(SCANNER.tag) == kind.name else {}
    entry = kind.table_for(path)
    entry.update({k: v for k, v in same.items() if k not in (SCANNER.tag, kind.path_key)})
    if answers.scanner_layout and takes_layout(kind):
        entry["layout"] = answers.scanner_layout
    settings["scanners"] = [entry]


def _scanner_kind(
    path: str,
    named: str | None,
    root: Path,
    warnings: list[str],
    problems: list[str],
    kinds: DeviceKinds,
) -> DeviceKind[Any, Any] | None:
    """The kind asked for, else the one the device (or its name) is recognised as, else
    a guess (said in a warning)."""
    if named:
        kind = kinds.named(SCANNER, named)
        if kind is None:
            problems.append(
                f"scanners[0].kind: must be one of {', '.join(kinds.names(SCANNER))} "
                f"(got {named!r})"
            )
        return kind
    found = kinds.recognise(SCANNER, Attached(path, stable_target_kind(root, path)))
    if found is not None:
        return found[0]
    guess, *others = kinds.of(SCANNER)
    warnings.append(
        f"{path} is not attached, so its kind is a guess: {guess.label} ({guess.name})"
        + "".join(
            f"; give --scanner-kind {other.name} if it is a {other.label} scanner"
            for other in others
        )
    )
    return guess


def _one_with_layout(settings: dict[str, Any], kinds: DeviceKinds) -> bool:
    scanners = settings.get("scanners") or []
    if len(scanners) != 1:
        return False
    kind = kinds.named(SCANNER, scanners[0].get(SCANNER.tag))
    return kind is not None and takes_layout(kind)


def _display(settings: dict[str, Any], answers: Answers, kinds: DeviceKinds) -> None:
    if answers.display == NONE:
        settings.pop("display", None)
        return
    if answers.display is None and "display" not in settings:
        return
    table = dict(settings.get("display", {}))
    if answers.display is not None:
        (kind,) = kinds.of(DISPLAY)
        table.update(kind.table_for(answers.display))
    if answers.display_model:
        table["model"] = answers.display_model
    settings["display"] = table


def printer_section(answer: str, root: Path, kinds: DeviceKinds = KINDS) -> dict[str, Any]:
    """The `[printer]` keys for an answer, by the printer kind that takes it:
    `/dev/usb/lp0` or a udev link (file), `serial:/dev/…`, a `/dev/serial/by-id/…` or tty
    link (serial), `tcp://host:9100` or `host:9100` (network)."""
    node = stable_target_kind(root, answer) if answer.startswith("/") else None
    found = kinds.recognise(PRINTER, Attached(answer, node))
    if found is None:
        forms = [kind.example for kind in kinds.of(PRINTER) if kind.example]
        raise ValueError(f"{answer!r}: give {_either(forms)}")
    return found[0].table_for(answer)


def _either(forms: list[str]) -> str:
    return ", ".join(forms[:-1]) + f" or {forms[-1]}" if len(forms) > 1 else "".join(forms)


def _printer(
    settings: dict[str, Any],
    answers: Answers,
    root: Path,
    problems: list[str],
    kinds: DeviceKinds,
) -> None:
    if answers.printer is None:
        return
    if answers.printer == NONE:
        settings.pop("printer", None)
        return
    try:
        table = printer_section(answers.printer, root, kinds)
    except ValueError as error:
        problems.append(f"printer: {error}")
        return
    old = settings.get("printer", {})
    table.update({k: old[k] for k in PRINTER.base.model_fields if k in old})
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


def _check_ledger(terminal: dict[str, Any], where: object, now: Current) -> list[str]:
    """The terminal's id and branch against those of the ledger already there."""
    if now.ledger is None:
        return []
    ledger_terminal, ledger_branch = now.ledger
    problems = []
    if ledger_terminal != terminal.get("id"):
        problems.append(
            f"terminal.id: the ledger at {where} belongs to terminal {ledger_terminal} (branch "
            f"{ledger_branch}), not {terminal.get('id')!r}; a ledger keeps its terminal id for "
            f"life. Keep --terminal {ledger_terminal}, or, once HQ holds every event of it, "
            "move that ledger away and provision again to start a new one"
        )
    if ledger_branch != terminal.get("branch"):
        problems.append(
            f"terminal.branch: the ledger at {where} belongs to branch {ledger_branch}, and posd "
            f"refuses to start with branch {terminal.get('branch')!r}; keep --branch "
            f"{ledger_branch}"
        )
    return problems


def _absent_devices(config: PosdConfig, root: Path, kinds: DeviceKinds) -> list[str]:
    named: list[tuple[str, str]] = []
    roles: tuple[DeviceRole[Any, Any], ...] = (SCANNER, DISPLAY, PRINTER)
    for role in roles:
        for key, section in config.sections(role):
            path_key = kinds.kind_of(section).path_key
            if path_key is not None:
                named.append((f"{key}.{path_key}", getattr(section, path_key)))
    return [
        f"{key}: {path} is not attached now; posd waits for it, and `posd doctor` checks it"
        for key, path in named
        if path.startswith("/") and not os.path.lexists(under(root, path))
    ]


# ------------------------------------------------------------------------- writing


def apply(planned: Plan, owner: Owner | None) -> ProvisionApplied:
    """Write what `plan` worked out. Nothing that already holds the same bytes is
    rewritten, and an existing ledger is never touched."""
    root = planned.root
    done = ProvisionApplied()
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
        if created.head_path is not None:
            owner.give(created.head_path, "posd")
    done.written.append(str(ledger))
    return done
