"""Device kinds, each registered once: its configuration section, how it is built, how
`posd doctor` checks it and how `posd provision` recognises it.

    reader = KINDS.build(SCANNER, config.scanners[0])     # the scanner that section says
    kind = KINDS.kind_of(config.printer)                  # the printer's DeviceKind record

A kind is one `DeviceKind` record, written in its driver's module next to the driver
(as a Klipper module carries its own `load_config`), and `daemon.drivers.kinds.KINDS`
is the explicit tuple of them. The configuration's device sections, the lane, the
doctor and provisioning all ask a `DeviceKinds` registry, never `isinstance`, so a new
kind touches its driver module (and its line in `kinds`), its simulator and its tests.
A test adds one without
touching anything else: `KINDS.adding(its_kind)` is a registry with it, to hand to
`parse_config`, the lane's `start`, the doctor's `Context` and `plan`.

Each kind plays one `DeviceRole` (scanner, display, printer, GPIO). A role whose sections
say which kind they are (`kind = "serial"` for scanners, `transport = "network"` for
printers) takes any number of kinds; the others take exactly one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, Literal, TypeVar, Union, cast, get_args

from pydantic import Field, GetPydanticSchema

from daemon.config.base import Section
from daemon.drivers.checks import CheckContext, Finding, Where
from daemon.errors import ConfigError

S = TypeVar("S", bound=Section)
D = TypeVar("D")

# What a stable name points at, as provisioning tells them apart (never by opening it).
Node = Literal["input", "serial", "printer"]
Likelihood = Literal["likely", "possible", "no"]
_RANK: Mapping[Likelihood, int] = {"likely": 0, "possible": 1, "no": 2}


class DeviceKindError(ConfigError):
    """Device kinds registered so that a configuration could not tell them apart."""


@dataclass(frozen=True)
class DeviceRole(Generic[S, D]):
    """What a device does for the lane, and where its sections sit in `posd.toml`.

    `base` is the section every kind of the role derives from (what the lane reads of
    any printer, say); `D` is what building a section of this role gives the lane.
    """

    name: str  # "scanner": what the doctor files its findings under
    title: str  # "scanner": how a person names it ("no scanner configured")
    key: str  # "scanners": the table (or list of tables) in posd.toml
    base: type[S]
    tag: str | None = None  # the key naming a section's kind; None: the role has one kind
    many: bool = False  # [[scanners]]: a list of sections rather than one table


@dataclass(frozen=True)
class Attached:
    """A device as provisioning sees it: a name as configured, and what that name points
    at here. Nothing is opened to find this out."""

    name: str  # a /dev/… link, a udev name, vendor:product, tcp://host:port, serial:/dev/…
    node: Node | None = None  # what the name points at; None: nothing attached under it
    label: str = ""  # what the device calls itself, and the names it goes by
    vendor: int | None = None  # its USB vendor id, when the kernel says
    keyboard_like: bool | None = None  # types letters, digits and Enter; None: not looked at


@dataclass(frozen=True)
class Recognition:
    """How likely an attached device is one of a kind, and why a person should think so."""

    likelihood: Likelihood
    why: str


def _claims_nothing(attached: Attached) -> Recognition | None:
    return None


@dataclass(frozen=True)
class DeviceKind(Generic[S, D]):
    """One kind of device: everything posd needs to know to use it, in one record."""

    name: str  # the value of the role's tag (`evdev`); the role's name when it has no tag
    role: DeviceRole[Any, D]
    section: type[S]  # its configuration section: a `Section` deriving from the role's base
    build: Callable[[S], D]  # the driver for a section, not yet opened
    check: Callable[[S, CheckContext, Where], Sequence[Finding]]  # what `posd doctor` does
    # Provisioning: which attached devices (or answers) this kind takes, and how sure.
    recognise: Callable[[Attached], Recognition | None] = _claims_nothing
    path_key: str | None = None  # the section's key that names the device by path
    label: str = ""  # a few words for a person: "keyboard mode", "serial"
    example: str = ""  # how an answer names a device of this kind: "tcp://host:9100"
    # An answer (a path, `tcp://…`) as the section's keys, and back; by default the
    # answer is the value of `path_key`.
    table: Callable[[str], dict[str, Any]] | None = None
    answer: Callable[[Mapping[str, Any]], str | None] | None = None

    def table_for(self, answer: str) -> dict[str, Any]:
        """The section's keys for an answer to `posd provision`; ValueError says why not."""
        if self.table is not None:
            return self.table(answer)
        made: dict[str, Any] = {self.role.tag: self.name} if self.role.tag else {}
        if self.path_key is not None:
            made[self.path_key] = answer
        return made

    def answer_for(self, table: Mapping[str, Any]) -> str | None:
        """What `posd provision` offers as the answer that gives this section."""
        if self.answer is not None:
            return self.answer(table)
        value = table.get(self.path_key) if self.path_key else None
        return str(value) if value else None


@dataclass(frozen=True)
class DeviceKinds:
    """The device kinds posd knows: an immutable registry, checked when it is made."""

    kinds: tuple[DeviceKind[Any, Any], ...]

    def __post_init__(self) -> None:
        seen: dict[tuple[str, str], DeviceKind[Any, Any]] = {}
        for kind in self.kinds:
            role = kind.role
            if not issubclass(kind.section, role.base):
                raise DeviceKindError(
                    f"{role.name} kind {kind.name!r}: its section {kind.section.__name__} "
                    f"must derive from {role.base.__name__}"
                )
            if (role.name, kind.name) in seen:
                raise DeviceKindError(f"{role.name} kind {kind.name!r} is registered twice")
            if role.tag is None and any(r == role.name for r, _ in seen):
                raise DeviceKindError(
                    f"{role.name} kind {kind.name!r}: a {role.name} section does not say "
                    "which kind it is, so the role takes one kind only"
                )
            tag = kind.section.model_fields.get(role.tag) if role.tag else None
            if role.tag is not None and (tag is None or get_args(tag.annotation) != (kind.name,)):
                raise DeviceKindError(
                    f"{role.name} kind {kind.name!r}: its section needs a {role.tag!r} key "
                    f"that says {kind.name!r} (Literal[{kind.name!r}])"
                )
            seen[(role.name, kind.name)] = kind

    def adding(self, *kinds: DeviceKind[Any, Any]) -> DeviceKinds:
        """This registry with `kinds` registered too."""
        return DeviceKinds((*self.kinds, *kinds))

    def of(self, role: DeviceRole[Any, Any]) -> tuple[DeviceKind[Any, Any], ...]:
        """The kinds of `role`, in the order they were registered."""
        return tuple(kind for kind in self.kinds if kind.role == role)

    def names(self, role: DeviceRole[Any, Any]) -> tuple[str, ...]:
        return tuple(kind.name for kind in self.of(role))

    def named(self, role: DeviceRole[Any, Any], name: object) -> DeviceKind[Any, Any] | None:
        """The kind of `role` called `name` (the value of its tag), or None."""
        return next((kind for kind in self.of(role) if kind.name == name), None)

    def kind_of(self, section: S) -> DeviceKind[S, Any]:
        """The kind a configuration section (as read with this registry) belongs to."""
        for kind in self.kinds:
            if type(section) is kind.section:
                return cast(DeviceKind[S, Any], kind)
        raise DeviceKindError(f"no device kind registered reads {type(section).__name__}")

    def build(self, role: DeviceRole[Any, D], section: Section) -> D:
        """The driver for `section`, made by its kind (nothing is opened yet)."""
        kind = self.kind_of(section)
        if kind.role != role:
            raise DeviceKindError(f"a {kind.role.name} section is not a {role.name}")
        return cast(D, kind.build(section))

    def recognise(
        self, role: DeviceRole[Any, Any], attached: Attached
    ) -> tuple[DeviceKind[Any, Any], Recognition] | None:
        """The kind of `role` most likely to be `attached`, with its verdict; None when no
        kind of the role takes such a device. Ties go to the kind registered first."""
        found = []
        for kind in self.of(role):
            verdict = kind.recognise(attached)
            if verdict is not None:
                found.append((kind, verdict))
        if not found:
            return None
        return min(found, key=lambda pair: _RANK[pair[1].likelihood])

    def schema(self, role: DeviceRole[Any, Any]) -> GetPydanticSchema:
        """How pydantic reads a section of `role`: the one kind's section, or the union of
        the kinds' sections told apart by the role's tag."""
        sections = tuple(kind.section for kind in self.of(role))
        if not sections:
            raise DeviceKindError(f"no {role.name} kind is registered")
        read: Any
        if role.tag is None:
            (read,) = sections
        else:
            read = Annotated[Union[sections], Field(discriminator=role.tag)]  # noqa: UP007
        return GetPydanticSchema(lambda _source, handler: handler(read))

    def tags(self) -> dict[str, tuple[str, ...]]:
        """Each tag key and the kinds it may name: `{"kind": ("evdev", "serial"), …}`."""
        found: dict[str, tuple[str, ...]] = {}
        for kind in self.kinds:
            tag = kind.role.tag
            if tag is not None and kind.name not in found.get(tag, ()):
                found[tag] = (*found.get(tag, ()), kind.name)
        return found

    def tagged_tables(self) -> frozenset[str]:
        """Keys of the single tables whose kind is named by a tag (`printer`)."""
        return frozenset(k.role.key for k in self.kinds if k.role.tag and not k.role.many)
