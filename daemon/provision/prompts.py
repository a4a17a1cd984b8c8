"""The questions `posd provision` asks, each answer checked as soon as it is typed.

Each question is asked only when its option was not given on the command line (or was
given a value the terminal would refuse), and never with `--yes`. An answer is checked
at its prompt the way `posd run` will check it — `plan` with the daemon's own
configuration model, so the wording is `posd config check`'s — and a bad one is said
and asked again, before the next question: nothing is typed twice.

The defaults are the terminal's current answers (its configuration, its ledger) or
what is plugged in (the udev names; the device `posd devices` marks as a scanner), so
pressing Enter through a re-run changes nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from daemon.config.spelling import spelled
from daemon.drivers.display.kind import DISPLAY
from daemon.drivers.kinds import KINDS
from daemon.drivers.printer_transport import PRINTER
from daemon.drivers.registry import DeviceKinds, DeviceRole
from daemon.drivers.scanner import SCANNER
from daemon.provision.answers import NONE, Answers, Current
from daemon.provision.files import under
from daemon.provision.inventory import Inventory
from daemon.provision.plan import (
    ProvisionError,
    answer_problems,
    answers_for,
    plan,
    scanner_kind,
    takes_layout,
)

MODES = ("cashier", "self_checkout")
DISPLAY_MODELS = ("epson", "cd5220")
_KEEP = ""  # the answer that keeps a file already installed
# Stand-ins for an identity not known yet, while another answer is checked.
_SOME_TERMINAL, _SOME_BRANCH = "T-0", "B-0"


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
        "store_name": now.value("terminal", "store_name"),
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


def _configured(kinds: DeviceKinds, role: DeviceRole[Any, Any], table: object) -> str | None:
    """The answer that gives the configured section `table` of `role`, by its kind."""
    if not isinstance(table, dict):
        return None
    if role.tag is None:
        kind = next(iter(kinds.of(role)), None)
    else:
        kind = kinds.named(role, table.get(role.tag))
    return kind.answer_for(table) if kind is not None else None


# The questions, by the answer each gives (`ANSWER_KEYS` in `plan`).
QUESTIONS = {
    "terminal": "Terminal id (unique in the chain, e.g. T-0042)",
    "branch": "Branch (store) id",
    "store_name": "Store name, as printed at the top of receipts",
    "mode": "Mode",
    "attendants": "Attendant who may release the lane, as NAME=BADGE",
    "scanner": "Scanner (a name listed above, vendor:product, or none)",
    "layout": "Keyboard layout the scanner types in (us, de, fr, …)",
    "display": "Customer display port (or none)",
    "display_model": "Display command set",
    "printer": "Receipt printer (/dev/… path, serial:/dev/…, tcp://host:9100, or none)",
    "hq_url": "HQ broker URL (mqtts://host:8883, or none)",
    "ca_file": "CA certificate that signed the broker's (blank: the system's CAs)",
    "cert_file": "Client certificate file",
    "key_file": "Client key file",
    "username": "Broker username",
    "password": "Broker password",
}


class Questions:
    """The answers so far, and each question asked until its answer is one the terminal
    would start with."""

    def __init__(self, given: Given, now: Current, found: Inventory, kinds: DeviceKinds) -> None:
        # An option not given is None (an empty tuple for one that may be repeated).
        self.values = {k: v for k, v in given.values.items() if v is not None and v != ()}
        self.interactive = given.ask
        self.now = now
        self.found = found
        self.kinds = kinds
        self.defaults = current_answers(now, found, kinds)

    def answers(self, values: dict[str, Any] | None = None) -> Answers:
        """`Answers` from what is known (stand-ins for an identity not given yet)."""
        values = self.values if values is None else values
        attendants = values.get("attendants")
        return Answers(
            terminal=values.get("terminal") or self.defaults["terminal"] or _SOME_TERMINAL,
            branch=values.get("branch") or self.defaults["branch"] or _SOME_BRANCH,
            mode=values.get("mode"),
            store_name=values.get("store_name"),
            hq_url=values.get("hq_url"),
            login=values.get("login"),
            username=values.get("username"),
            password_file=values.get("password_file"),
            password=values.get("password"),
            ca_file=values.get("ca_file"),
            cert_file=values.get("cert_file"),
            key_file=values.get("key_file"),
            scanner=values.get("scanner"),
            scanner_kind=values.get("scanner_kind"),
            scanner_layout=values.get("layout"),
            display=values.get("display"),
            display_model=values.get("display_model"),
            printer=values.get("printer"),
            gpio=values.get("gpio"),
            pin_factory=values.get("pin_factory"),
            attendants=pairs(attendants) if attendants else None,
            screen=values.get("screen"),
        )

    def problems(self, name: str, value: Any) -> list[str]:
        """What is wrong with `value` as the answer `name`, given the others so far."""
        return answer_problems(
            name, self.answers({**self.values, name: value}), self.now, self.kinds
        )

    def ask(
        self,
        name: str,
        *,
        default: Any = None,
        read: Callable[[str], Any] = str.strip,
        **options: Any,
    ) -> Any:
        """The answer `name`: as given on the command line when the terminal would take
        it, else asked (with --yes: the default) until it would."""
        value = self.values.get(name)
        if value is not None:
            problems = self.problems(name, value)
            if not problems or not self.interactive:
                return value
            flag = "--" + name.replace("_", "-")
            click.echo(f"Error: {flag} {value!r} cannot be used: {'; '.join(problems)}")
        if default is None:
            default = self.defaults.get(name)
        if not self.interactive:
            self.values[name] = default
            return default

        def accept(typed: str) -> Any:
            answer = read(typed)
            if answer in ("", None) and default is None:  # only blanks, and no default
                raise click.BadParameter("this question needs an answer")
            problems = self.problems(name, answer)
            if problems:
                raise click.BadParameter("; ".join(problems))
            return answer

        self.values[name] = click.prompt(
            QUESTIONS[name], default=default, value_proc=accept, **options
        )
        return self.values[name]

    def refuse_what_no_question_fixes(self, asked: set[str]) -> None:
        """Refuse at once what no question will put right: a bad value given for an
        option that is not asked about (`--gpio`), or a key edited by hand."""
        try:
            plan(self.answers(), self.now, self.kinds)
        except ProvisionError as refused:
            left = [p for p in refused.problems if not set(answers_for(p)) & asked]
            if left:
                raise ProvisionError(left) from None


# Every question `answers` may ask; a problem for one of them waits for its prompt.
_ASKED = frozenset(QUESTIONS) | {"login", "screen"}


def answers(given: Given, now: Current, found: Inventory, kinds: DeviceKinds = KINDS) -> Answers:
    """Fill in what the command line left out: from the terminal, or by asking."""
    q = Questions(given, now, found, kinds)
    if q.interactive:
        q.refuse_what_no_question_fixes(set(_ASKED))
    terminal = q.ask("terminal")
    branch = q.ask("branch")
    if not terminal or not branch:
        missing = "--terminal" if not terminal else "--branch"
        raise click.UsageError(
            f"{missing} is required: this terminal has no configuration or ledger to take it from"
        )
    q.ask("store_name", read=_store_name)
    mode = q.ask("mode", read=_one_of(MODES), type=click.Choice(MODES))
    if (
        mode == "self_checkout"
        and not q.values.get("attendants")
        and q.interactive
        and not now.settings.get("attendants")
    ):
        q.ask("attendants", read=lambda typed: (pairs([typed]) and typed.strip(),))
    scanner = q.ask("scanner", default=_scanner_default(q))
    kind = scanner_kind(scanner, q.values.get("scanner_kind"), now.root, kinds)
    if takes_layout(kind) and (q.interactive or q.values.get("layout")):
        q.ask("layout", default=_layout_default(now, kinds))
    display = q.ask("display")
    if display != NONE:
        q.ask("display_model", read=_one_of(DISPLAY_MODELS), type=click.Choice(DISPLAY_MODELS))
    q.ask("printer")
    if q.values.get("screen") is None and q.interactive:
        q.values["screen"] = click.confirm(
            "Does this terminal have a screen (touch screen or monitor) for the lane screen?",
            default=now.value("screen", "enabled") is not False,
        )
    hq_url = q.ask("hq_url")
    if hq_url != NONE:
        _broker(q, terminal)
    return q.answers()


def _store_name(typed: str) -> str:
    name = typed.strip()
    if not name:
        raise click.BadParameter("type the store's name: every receipt starts with it")
    return name


def _one_of(choices: tuple[str, ...]) -> Callable[[str], str]:
    """Read an answer as one of `choices`, as people type it (`Self-Checkout`)."""
    return lambda typed: spelled(typed, choices) or typed.strip()


def _scanner_default(q: Questions) -> str | None:
    """At the prompt, the device `posd devices` marks as a scanner (the first, when
    several are); with --yes only one that is clearly the scanner (`current_answers`)."""
    default = q.defaults.get("scanner")
    if default == NONE and q.interactive:
        likely = [d for d in q.found.scanners() if d.scanner == "likely"]
        if likely:
            return likely[0].name
    return default


def _layout_default(now: Current, kinds: DeviceKinds) -> str:
    scanners = now.settings.get("scanners") or []
    if scanners and takes_layout(kinds.named(SCANNER, scanners[0].get(SCANNER.tag))):
        return str(scanners[0].get("layout", "us"))
    return "us"


def _broker(q: Questions, terminal: str) -> None:
    """The broker login: a password (kept in a 0600 file) or a client certificate."""
    values, now = q.values, q.now
    if values.get("cert_file") or values.get("key_file"):
        values["login"] = "certificate"
    elif values.get("username") or values.get("password_file"):
        values["login"] = "password"
    if not q.interactive:
        return
    if values.get("ca_file") is None:
        _file_question(q, "ca_file")
    if values.get("login") is None:
        had = "certificate" if now.value("replication", "cert_file") else "password"
        values["login"] = click.prompt(
            "Log in to the broker with", type=click.Choice(["password", "certificate"]), default=had
        )
    if values["login"] == "certificate":
        for name in ("cert_file", "key_file"):
            if not values.get(name):
                _file_question(q, name)
        return
    q.ask("username", default=q.defaults.get("username") or terminal)
    if values.get("password_file"):
        return
    kept = now.value("replication", "password_file")
    have = bool(kept) and under(now.root, kept).is_file()
    q.ask(
        "password",
        default=_KEEP if have else None,
        read=lambda typed: typed if typed != _KEEP else None,
        hide_input=True,
        confirmation_prompt=True,
        show_default=False,
        prompt_suffix=" (blank keeps the current one): " if have else ": ",
    )


def _file_question(q: Questions, name: str) -> None:
    """A file to install; blank keeps the one installed (or means none)."""
    installed = q.now.value("replication", name)
    suffix = ": "
    if installed and under(q.now.root, installed).is_file():
        suffix = f" (blank keeps {installed}): "
    q.ask(
        name,
        default=_KEEP,
        read=lambda typed: Path(typed.strip()).expanduser() if typed.strip() else None,
        show_default=False,
        prompt_suffix=suffix,
    )


def pairs(items: tuple[str, ...] | list[str]) -> tuple[tuple[str, str], ...]:
    """`("Mia=BADGE-0042",)` -> `(("Mia", "BADGE-0042"),)`; BadParameter says the form."""
    found = []
    for item in items:
        name, sep, badge = item.partition("=")
        if not sep or not name.strip() or not badge.strip():
            raise click.BadParameter(
                f"{item!r}: write an attendant as NAME=BADGE, e.g. Mia=BADGE-0042",
                param_hint="--attendant",
            )
        found.append((name.strip(), badge.strip()))
    return tuple(found)
