"""The lane's configuration: one TOML file, checked whole at start-up.

    config = load_config("/etc/posd/posd.toml")      # raises ConfigFileError

Every table refuses keys it does not know and values of the wrong type, and the error
names the key and quotes the value: `display.baud: must be one of 2400, 4800, 9600,
19200 (got 1234)`. `posd config check FILE` prints the same. The example
configuration in `systemd/` lists every section.

The device sections (`[[scanners]]`, `[display]`, `[printer]`, `[gpio]`) are read through
the registry of device kinds (`daemon.drivers.kinds.KINDS`): each kind brings its own
section, and `parse_config(data, kinds=…)` reads a file with another registry.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

# First: biip's GS1 tables, then the device kinds (evdev, xkbcommon, gpiozero, pyserial).
# The other way round the same imports leave `posd run` about 2 MB bigger (posd bench,
# rss_mb): where the allocator puts the tables depends on what is already there.
from daemon.rules.barcode import BarcodeOptions  # isort: split

from daemon.config.base import Section
from daemon.config.pins import PinError, parse_pin_hash
from daemon.config.replication import ReplicationConfig
from daemon.config.screen import ScreenConfig
from daemon.config.spelling import did_you_mean
from daemon.drivers.display.kind import DISPLAY, DisplayConfig
from daemon.drivers.gpio import GPIO, GpioConfig
from daemon.drivers.kinds import KINDS
from daemon.drivers.printer_transport import PRINTER, PrinterConfigBase
from daemon.drivers.registry import DeviceKinds, DeviceRole
from daemon.drivers.scanner import SCANNER, ScannerConfigBase
from daemon.errors import ConfigError
from daemon.rules.units import State
from daemon.rules.values import Identifier, Name, Note

S = TypeVar("S", bound=Section)
LOOPBACK = ("127.0.0.1", "::1", "localhost")
_TERMINAL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")


class ConfigFileError(ConfigError):
    """The configuration cannot be used; `problems` has one line per bad key."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


class TerminalConfig(Section):
    id: str
    branch: Identifier  # a topic level at HQ's broker, as the terminal id is
    mode: Literal["cashier", "self_checkout"] = "cashier"
    store_name: Name = "posd"
    currency: str = Field(default="", max_length=4, pattern=r"^[^\x00-\x1f\x7f]*$")
    operator: Name | None = None  # who the lane's ledger events are by
    # The branch's GS1 Global Location Number: EPCIS exports name the place by it.
    gln: str | None = None

    @field_validator("gln")
    @classmethod
    def _gln(cls, value: str | None) -> str | None:
        from biip import ParseError
        from biip.gln import Gln

        if value is None:
            return None
        if not (len(value) == 13 and value.isdigit()):
            raise ValueError(f"GLN {value[:20]!r} must be 13 digits")
        try:
            Gln.parse(value)
        except ParseError as error:
            raise ValueError(str(error)) from None
        return value

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _TERMINAL_ID.fullmatch(value):
            raise ValueError(
                f"terminal id {value!r} must be 1 to 32 letters, digits, - or _, starting "
                "with a letter or digit (it starts every invoice number, e.g. T-001-000042)"
            )
        return value


class LedgerConfig(Section):
    path: Path


class LoggingConfig(Section):
    level: Literal["debug", "info", "warning", "error", "critical"] = "info"


class ApiConfig(Section):
    """The kiosk API. It has no log-in, so it listens on the loopback interface only."""

    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)

    @field_validator("host")
    @classmethod
    def _loopback(cls, host: str) -> str:
        if host not in LOOPBACK:
            raise ValueError(
                f"{host!r} is not a loopback address; the kiosk API has no log-in, so it "
                "listens on 127.0.0.1 or ::1 only"
            )
        return host


class BarcodeConfig(Section):
    command_prefix: str | None = "#CMD:"
    gs_stand_in: str | None = None
    numeric_serials: bool = False
    max_length: int = Field(default=512, ge=16, le=8192)
    separators_sent: bool = False

    @model_validator(mode="after")
    def _usable(self) -> BarcodeConfig:
        self.options()  # raises ValueError with the reason
        return self

    def options(self) -> BarcodeOptions:
        return BarcodeOptions(
            command_prefix=self.command_prefix,
            gs_stand_in=self.gs_stand_in,
            numeric_serials=self.numeric_serials,
            max_length=self.max_length,
            separators_sent=self.separators_sent,
        )


class AttendantConfig(Section):
    """Someone who may release a locked self-checkout: by badge, by PIN, or both."""

    name: Name
    badge: str | None = Field(default=None, min_length=4, max_length=64)
    pin_hash: str | None = None

    @field_validator("pin_hash")
    @classmethod
    def _hashed(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_pin_hash(value)
            except PinError as problem:
                raise ValueError(str(problem)) from None
        return value

    @model_validator(mode="after")
    def _can_release(self) -> AttendantConfig:
        if self.badge is None and self.pin_hash is None:
            raise ValueError(f"attendant {self.name!r} needs a badge or a pin_hash")
        return self


class ManagerConfig(AttendantConfig):
    """Someone who may approve what only a manager may do at the lane (an override, a
    void of a sold line, a write-off, settling a stock count's differences) by badge,
    by PIN, or both. A manager may also release a locked self-checkout."""

    @model_validator(mode="after")
    def _can_release(self) -> ManagerConfig:
        if self.badge is None and self.pin_hash is None:
            raise ValueError(f"manager {self.name!r} needs a badge or a pin_hash")
        return self


class LaneConfig(Section):
    serial_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    mode_timeout_s: float = Field(default=120.0, gt=0, le=86400)
    abandoned_sale_s: float = Field(default=300.0, gt=0, le=86400)
    return_disposition: Literal[
        "in_stock", "quarantined", "in_repair", "returned_to_supplier", "written_off"
    ] = "quarantined"
    return_condition: Note = "as brought back to the lane"
    supplier: Name = "delivery at the lane"
    walk_in_customer: Name = "walk-in customer"
    receipt_footer: list[Name] = Field(default_factory=lambda: ["Thank you"], max_length=20)

    def disposition(self) -> State:
        return State(self.return_disposition)


class PosdConfig(Section):
    terminal: TerminalConfig
    ledger: LedgerConfig
    logging: LoggingConfig = LoggingConfig()
    # Each read as the registered kinds of its role say (see `config_model`).
    scanners: list[Annotated[ScannerConfigBase, KINDS.schema(SCANNER)]] = Field(
        default_factory=list
    )
    display: Annotated[DisplayConfig, KINDS.schema(DISPLAY)] | None = None
    printer: Annotated[PrinterConfigBase, KINDS.schema(PRINTER)] | None = None
    gpio: Annotated[GpioConfig, KINDS.schema(GPIO)] | None = None
    api: ApiConfig = ApiConfig()
    barcode: BarcodeConfig = BarcodeConfig()
    attendants: list[AttendantConfig] = Field(default_factory=list)
    managers: list[ManagerConfig] = Field(default_factory=list)
    lane: LaneConfig = LaneConfig()
    screen: ScreenConfig = ScreenConfig()
    # Absent: the terminal keeps selling and its ledger keeps every event for later.
    replication: ReplicationConfig | None = None

    @model_validator(mode="after")
    def _consistent(self) -> PosdConfig:
        badges = [a.badge for a in self.attendants if a.badge]
        if len(badges) != len(set(badges)):
            raise ValueError("attendants: two attendants have the same badge")
        taken = set(badges)
        for number, manager in enumerate(self.managers):
            if manager.badge and manager.badge in taken:
                raise ValueError(
                    f"managers[{number}].badge: {manager.name!r} has a badge that is already "
                    "another attendant's or manager's; give each person their own badge"
                )
            if manager.badge:
                taken.add(manager.badge)
        if self.terminal.mode == "self_checkout" and not (self.attendants or self.managers):
            raise ValueError(
                "attendants: a self-checkout lane needs at least one attendant with a badge "
                "or a pin_hash, or nobody can release it"
            )
        names = [s.name for s in self.scanners if s.name]
        if len(names) != len(set(names)):
            raise ValueError("scanners: two scanners have the same name")
        return self

    @property
    def self_checkout(self) -> bool:
        return self.terminal.mode == "self_checkout"

    def sections(self, role: DeviceRole[S, Any]) -> list[tuple[str, S]]:
        """The sections of `role` configured here, each with its key (`scanners[0]`,
        `printer`); none when the role has none."""
        found = getattr(self, role.key)
        if role.many:
            return [(f"{role.key}[{index}]", section) for index, section in enumerate(found)]
        return [] if found is None else [(role.key, found)]

    @property
    def operator(self) -> str:
        return self.terminal.operator or f"lane {self.terminal.id}"


def config_model(kinds: DeviceKinds = KINDS) -> type[PosdConfig]:
    """The configuration read with `kinds`' device sections: `PosdConfig` itself for the
    registered kinds, a subclass of it for any other registry (a test's, say)."""
    if kinds is KINDS:
        return PosdConfig
    return create_model(
        "PosdConfig",
        __base__=PosdConfig,
        __module__=__name__,
        scanners=(
            list[Annotated[ScannerConfigBase, kinds.schema(SCANNER)]],
            Field(default_factory=list),
        ),
        display=(Annotated[DisplayConfig, kinds.schema(DISPLAY)] | None, None),
        printer=(Annotated[PrinterConfigBase, kinds.schema(PRINTER)] | None, None),
        gpio=(Annotated[GpioConfig, kinds.schema(GPIO)] | None, None),
    )


def load_config(path: str | Path, kinds: DeviceKinds = KINDS) -> PosdConfig:
    """Read and check a configuration file; ConfigFileError lists every problem."""
    source = str(path)
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as error:
        raise ConfigFileError(source, [f"cannot be read ({error.strerror or error})"]) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigFileError(source, [f"is not valid TOML: {error}"]) from None
    except UnicodeDecodeError as error:
        raise ConfigFileError(
            source, [f"is not UTF-8 text (byte {error.start + 1}); save it as UTF-8"]
        ) from None
    return parse_config(data, source, kinds)


def parse_config(
    data: dict[str, Any], source: str = "configuration", kinds: DeviceKinds = KINDS
) -> PosdConfig:
    try:
        return config_model(kinds).model_validate(data)
    except ValidationError as error:
        raise ConfigFileError(source, [describe(e, kinds) for e in error.errors()]) from None


# ---------------------------------------------------------------- error wording

_WORDS = {
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be text (in quotes)",
    "list_type": "must be a list ([...])",
    "model_type": "must be a table",
    "dict_type": "must be a table",
    "model_attributes_type": "must be a table",
}
_PLAIN_PIN = "plain PINs are never stored; put the output of `posd config hash-pin` in pin_hash"


def key_path(loc: tuple[int | str, ...], kinds: DeviceKinds = KINDS) -> str:
    """`("scanners", 0, "serial", "baud")` -> `scanners[0].baud` (the kinds' tags dropped)."""
    tags = {name for names in kinds.tags().values() for name in names}
    tables = kinds.tagged_tables()
    text = ""
    previous: int | str | None = None
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part in tags and (isinstance(previous, int) or previous in tables):
            pass
        elif not part.startswith(("function-", "model-")):
            text += f".{part}" if text else part
        previous = part
    return text or "(top level)"


def describe(error: Any, kinds: DeviceKinds = KINDS) -> str:
    """One pydantic error as `key.path: what is wrong (got value)`."""
    kind, loc, given = error["type"], tuple(error["loc"]), error.get("input")
    path = key_path(loc, kinds)
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        if loc and loc[-1] in ("pin", "password"):
            return f"{path}: unknown key; {_PLAIN_PIN}"
        return f"{path}: unknown key; check its spelling against the example configuration"
    if kind == "missing":
        return f"{path}: is required"
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace(" or ", ", ").replace("'", "")
        hint = did_you_mean(given, expected.split(", "))
        return f"{path}: must be one of {expected} (got {given!r})" + (f"; {hint}" if hint else "")
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tag = str(ctx.get("discriminator", "kind")).strip("'")
        names = kinds.tags().get(tag, ())
        if kind == "union_tag_not_found":
            return f"{path}.{tag}: is required (one of {', '.join(names)})"
        hint = did_you_mean(ctx.get("tag"), names)
        return f"{path}.{tag}: must be one of {', '.join(names)} (got {ctx.get('tag')!r})" + (
            f"; {hint}" if hint else ""
        )
    if kind in _WORDS:
        return f"{path}: {_WORDS[kind]} (got {given!r})"
    if kind == "value_error":
        reason = str(ctx.get("error", error["msg"]))
        return reason if not loc else f"{path}: {reason}"
    message = str(error["msg"])
    message = message.replace("Input should be", "must be").replace("String should", "must")
    message = message.replace("Value should", "must").replace("List should", "must")
    message = message[0].lower() + message[1:] if message else message
    if isinstance(given, dict | list):
        return f"{path}: {message}"
    return f"{path}: {message} (got {given!r})"
