"""The input and serial devices attached to this terminal, by their stable names.

    for device in inventory(Path("/")).devices:
        print(device.name, device.label, device.scanner, device.why)

A device is listed under the names that survive a replug or a reboot: the udev links
of `99-posd.rules` (`/dev/posd-scanner`, …), `/dev/input/by-id/…`, `/dev/input/by-path/…`,
`/dev/serial/by-id/…` and `/dev/serial/by-path/…`. The kernel's own `eventN` and
`ttyUSBn` numbers are only used to tell which names are the same device; they are never
offered, because the configuration refuses them.

Everything is read from the filesystem under `root` (links in `dev/`, attributes in
`sys/class/…`), so a test can build a fake tree. Nothing is opened and nothing is
written to a port: whether a serial port holds a scanner, a display or a printer is
what the configuration says, never what a probe guesses. Whether a device may be a
scanner is each scanner kind's judgement (`DeviceKind.recognise`, in its driver).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from daemon.drivers.kinds import KINDS
from daemon.drivers.registry import Attached, DeviceKinds, Likelihood
from daemon.drivers.registry import Node as Kind
from daemon.drivers.scanner import SCANNER

# Link folders, best first: the name a person would rather read in a config file.
_LINK_FOLDERS: tuple[tuple[str, Kind], ...] = (
    ("dev/input/by-id", "input"),
    ("dev/serial/by-id", "serial"),
    ("dev/input/by-path", "input"),
    ("dev/serial/by-path", "serial"),
)
_EVENT_NODE = re.compile(r"event[0-9]+")
_SERIAL_NODE = re.compile(r"tty(USB|ACM|S|AMA)[0-9]+")
_PRINTER_NODE = re.compile(r"lp[0-9]+")

# evdev numbers (linux/input-event-codes.h): a keyboard types letters, digits and Enter.
_EV_KEY = 1
_KEY_DIGITS = range(2, 12)  # KEY_1 .. KEY_0
_KEY_ENTER = 28
_KEY_A = 30


@dataclass(frozen=True)
class Device:
    """One attached device under its best stable name (`name`) and any others (`aliases`)."""

    name: str
    kind: Kind
    label: str  # what the device calls itself, for a person
    vendor_product: str | None  # "05e0:1200" when the kernel says
    scanner: Likelihood
    why: str  # why it is (or is not) taken for a scanner
    aliases: tuple[str, ...] = ()
    node: str = field(default="", repr=False, compare=False)  # kernel node; never offered

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "kind": self.kind,
            "label": self.label,
            "vendor_product": self.vendor_product,
            "scanner": self.scanner,
            "why": self.why,
            "aliases": list(self.aliases),
        }


@dataclass(frozen=True)
class Inventory:
    devices: tuple[Device, ...]

    def scanners(self) -> list[Device]:
        """Devices that may be scanners, likely ones first."""
        order = {"likely": 0, "possible": 1}
        found = [d for d in self.devices if d.scanner in order]
        return sorted(found, key=lambda d: (order[d.scanner], d.name))

    def suggested_scanner(self) -> Device | None:
        """The one device that is clearly the scanner, or None when that is not clear."""
        likely = [d for d in self.devices if d.scanner == "likely"]
        return likely[0] if len(likely) == 1 else None

    def named(self, path: str) -> Device | None:
        """The device `path` (a stable name or alias) points at, if attached."""
        for device in self.devices:
            if path == device.name or path in device.aliases:
                return device
        return None


def inventory(root: Path = Path("/"), kinds: DeviceKinds = KINDS) -> Inventory:
    """Every input, serial and USB printer device under `root` that has a stable name;
    `kinds` judge which may be scanners."""
    names: dict[str, list[tuple[int, str, Kind]]] = {}
    for rank, (folder, kind) in enumerate(_LINK_FOLDERS, start=1):
        for link, node in _links(root, root / folder):
            names.setdefault(node, []).append((rank, link, _kind(node, kind)))
    for link, node in _links(root, root / "dev", pattern="posd-*"):
        names.setdefault(node, []).append((0, link, _kind(node, "serial")))
    devices = []
    for node, found in names.items():
        found.sort()
        kind = found[0][2]
        device_names = [link for _, link, _ in found]
        base = os.path.basename(node)
        if kind == "input" and not _EVENT_NODE.fullmatch(base):
            continue  # by-id also lists mouseN / jsN nodes of the same device
        devices.append(_describe(root, node, kind, device_names, kinds))
    return Inventory(tuple(sorted(devices, key=lambda d: (d.kind, d.name))))


def stable_target_kind(root: Path, path: str) -> Kind | None:
    """What kind of node the link `path` (as configured, e.g. `/dev/posd-scanner`)
    points at under `root`; None when it is not there."""
    link = root / path.lstrip("/")
    if not link.is_symlink():
        return None
    node = _resolve(root, link)
    if node is None:
        return None
    return _kind(node, "serial")


# ------------------------------------------------------------------------ internals


def _links(root: Path, folder: Path, pattern: str = "*") -> Iterable[tuple[str, str]]:
    """(the name as configured, the node it points at) for each live link in `folder`."""
    if not folder.is_dir():
        return
    for link in sorted(folder.glob(pattern)):
        if not link.is_symlink():
            continue
        node = _resolve(root, link)
        if node is not None:
            yield "/" + str(link.relative_to(root)), node


def _resolve(root: Path, link: Path) -> str | None:
    """The node a link points at, as a path under `root`, without leaving `root`."""
    target = os.readlink(link)
    if os.path.isabs(target):
        resolved = os.path.normpath(str(root / target.lstrip("/")))
    else:
        resolved = os.path.normpath(str(link.parent / target))
    inside = os.path.normpath(str(root)).rstrip("/") + "/"
    if not resolved.startswith(inside):
        return None
    return resolved if os.path.exists(resolved) else None


def _kind(node: str, default: Kind) -> Kind:
    base = os.path.basename(node)
    if _EVENT_NODE.fullmatch(base) or "/input/" in node:
        return "input"
    if _PRINTER_NODE.fullmatch(base):
        return "printer"
    return "serial" if _SERIAL_NODE.fullmatch(base) else default


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return ""


def _hex(text: str) -> int | None:
    try:
        return int(text, 16)
    except ValueError:
        return None


def _usb_ids(root: Path, node: str, kind: Kind) -> tuple[int | None, int | None, str]:
    """Vendor id, product id and the kernel's name for a node, from sysfs."""
    base = os.path.basename(node)
    if kind == "input":
        device = root / "sys/class/input" / base / "device"
        return (
            _hex(_read(device / "id/vendor")),
            _hex(_read(device / "id/product")),
            _read(device / "name"),
        )
    sys_class = "usbmisc" if kind == "printer" else "tty"
    folder = root / "sys/class" / sys_class / base / "device"
    # A tty's `device` is the USB interface; the ids sit on the USB device above it.
    for candidate in (folder, folder / "..", folder / "../.."):
        vendor = _read(candidate / "idVendor")
        if vendor:
            label = " ".join(
                part
                for part in (_read(candidate / "manufacturer"), _read(candidate / "product"))
                if part
            )
            return _hex(vendor), _hex(_read(candidate / "idProduct")), label
    return None, None, ""


def _keyboard_like(root: Path, node: str) -> bool:
    caps = root / "sys/class/input" / os.path.basename(node) / "device/capabilities"
    ev_words = _read(caps / "ev").split()
    key_words = _read(caps / "key").split()
    if not ev_words or not key_words:
        return False
    ev = _hex(ev_words[-1]) or 0
    # The lowest key codes sit in the last word, whatever the kernel's word size.
    keys = _hex(key_words[-1]) or 0
    wanted = [_KEY_ENTER, _KEY_A, *_KEY_DIGITS]
    return bool(ev & (1 << _EV_KEY)) and all(keys & (1 << code) for code in wanted)


def _describe(root: Path, node: str, kind: Kind, names: list[str], kinds: DeviceKinds) -> Device:
    vendor, product, kernel_name = _usb_ids(root, node, kind)
    link_name = os.path.basename(names[-1] if len(names) > 1 else names[0])
    label = kernel_name or _label_from_link(next((n for n in names if "/by-id/" in n), link_name))
    ids = f"{vendor:04x}:{product:04x}" if vendor is not None and product is not None else None
    text = " ".join([label, *names])
    named_by_udev = next((os.path.basename(n) for n in names if n.startswith("/dev/posd-")), "")
    scanner: Likelihood
    if named_by_udev:
        role = named_by_udev.removeprefix("posd-")
        scanner = "likely" if role.startswith("scanner") else "no"
        why = f"the posd udev rules name it the {role}"
    else:
        keyboard_like = _keyboard_like(root, node) if kind == "input" else None
        attached = Attached(names[0], kind, text, vendor, keyboard_like)
        found = kinds.recognise(SCANNER, attached)
        if found is None:
            scanner, why = "no", f"no kind of scanner is read from a {kind} device"
        else:
            scanner, why = found[1].likelihood, found[1].why
    return Device(names[0], kind, label, ids, scanner, why, tuple(names[1:]), node)


def _label_from_link(link: str) -> str:
    """`usb-Honeywell_Imaging_1900-event-kbd` -> `Honeywell Imaging 1900`."""
    base = os.path.basename(link)
    base = re.sub(r"^(usb|pci|platform)-", "", base)
    base = re.sub(r"(-if[0-9]+)?(-port[0-9]+)?(-event-kbd|-event-.*|-kbd)?$", "", base)
    return base.replace("_", " ").strip() or link
