"""`posd provision` and `posd devices`, end to end into a temporary root.

The root holds a fake `/dev` (by-id, by-path and udev links to event and tty nodes) and
a fake `/sys` (device names, USB ids, key capabilities), built the way the kernel and
udev lay them out, so the inventory is read exactly as on a terminal.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from daemon.cli import build
from daemon.config.model import load_config
from daemon.ledger import Ledger
from daemon.provision.inventory import inventory
from tests.test_tls_broker import Pki, make_pki

# A real keyboard's key bitmap (two 64-bit words): letters, digits, Enter and more.
KEYBOARD_KEYS = "e080ffdf01cfffff fffffffffffffffe"
MOUSE_KEYS = "1f0000 0 0 0 0"
SCANNER_BY_ID = "/dev/input/by-id/usb-Honeywell_Imaging___Mobility_1900-event-kbd"
SERIAL_SCANNER = "/dev/serial/by-id/usb-Datalogic_ADC_Gryphon_GD4430-if00"
DISPLAY_BY_ID = "/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0"


def _link(root: Path, link: str, target: str) -> None:
    path = root / link.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)


def _files(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")


def _input(root: Path, node: str, name: str, vendor: str, product: str, keys: str) -> None:
    (root / "dev/input" / node).touch()
    device = f"sys/class/input/{node}/device"
    _files(
        root,
        {
            f"{device}/name": name,
            f"{device}/id/vendor": vendor,
            f"{device}/id/product": product,
            f"{device}/capabilities/ev": "120013" if keys == KEYBOARD_KEYS else "17",
            f"{device}/capabilities/key": keys,
        },
    )


def _tty(root: Path, node: str, usb: str, ids: dict[str, str]) -> None:
    (root / "dev" / node).touch()
    _files(root, {f"sys/devices/usb1/{usb}/{key}": value for key, value in ids.items()})
    (root / f"sys/devices/usb1/{usb}/{usb}:1.0").mkdir(parents=True)
    _link(root, f"sys/class/tty/{node}/device", f"../../../devices/usb1/{usb}/{usb}:1.0")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return build_root(tmp_path)


def build_root(tmp_path: Path) -> Path:
    """A terminal's filesystem with a keyboard-mode scanner, a keyboard, a mouse, a
    serial scanner and a pole display on a USB-serial adapter."""
    root = tmp_path / "root"
    (root / "dev/input").mkdir(parents=True)
    _input(root, "event3", "Honeywell Imaging & Mobility 1900", "0c2e", "0b61", KEYBOARD_KEYS)
    _link(root, SCANNER_BY_ID, "../event3")
    _link(root, "/dev/input/by-path/platform-xhci-hcd.0-usb-0:1.2:1.0-event-kbd", "../event3")
    _input(root, "event5", "Logitech USB Receiver", "046d", "c52b", MOUSE_KEYS)
    (root / "dev/input/mouse0").touch()
    _link(root, "/dev/input/by-id/usb-Logitech_USB_Receiver-event-mouse", "../event5")
    _link(root, "/dev/input/by-id/usb-Logitech_USB_Receiver-mouse", "../mouse0")
    _input(root, "event7", "Cherry USB Keyboard", "046a", "0011", KEYBOARD_KEYS)
    _link(root, "/dev/input/by-id/usb-Cherry_USB_Keyboard-event-kbd", "../event7")
    _tty(root, "ttyACM0", "1-1", {"idVendor": "05f9", "idProduct": "4204",
                                   "manufacturer": "Datalogic", "product": "Gryphon"})  # fmt: skip
    _link(root, SERIAL_SCANNER, "../../ttyACM0")
    _tty(root, "ttyUSB0", "1-3", {"idVendor": "0403", "idProduct": "6001",
                                   "manufacturer": "FTDI", "product": "FT232R UART"})  # fmt: skip
    _link(root, DISPLAY_BY_ID, "../../ttyUSB0")
    _link(root, "/dev/posd-display", "ttyUSB0")  # what 99-posd.rules makes
    return root


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text("s3cret-Pa55\n")
    return path


@pytest.fixture
def runner() -> Iterator[CliRunner]:
    yield CliRunner()


def provision(runner: CliRunner, root: Path, *args: str, input: str | None = None) -> Result:
    return runner.invoke(build(), ["provision", "--root", str(root), *args], input=input)


def full_flags(pki: Pki, password_file: Path) -> list[str]:
    return [
        "--terminal", "T-0042", "--branch", "BR-017", "--store-name", "Kowalski Tools",
        "--scanner", SCANNER_BY_ID, "--layout", "de",
        "--display", "/dev/posd-display", "--display-model", "cd5220",
        "--printer", "tcp://192.0.2.10:9100",
        "--gpio", "green=17,amber=27,red=22,buzzer=18", "--pin-factory", "lgpio",
        "--hq-url", "mqtts://mqtt.example.com:8883", "--ca-file", str(pki.ca),
        "--username", "T-0042", "--password-file", str(password_file),
    ]  # fmt: skip


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ------------------------------------------------------------------- the inventory


def test_devices_are_listed_by_stable_names_with_the_scanners_picked_out(
    runner: CliRunner, root: Path
) -> None:
    result = runner.invoke(build(), ["devices", "--root", str(root)])
    assert result.exit_code == 0, result.output
    out = result.output
    for name in (SCANNER_BY_ID, SERIAL_SCANNER, "/dev/posd-display", DISPLAY_BY_ID):
        assert name in out
    # Kernel numbers are never offered as names.
    for unstable in ("event3", "ttyUSB0", "ttyACM0", "mouse0"):
        assert f"/dev/{unstable}" not in out and f"/dev/input/{unstable}" not in out
    found = {d.name: d for d in inventory(root).devices}
    assert found[SCANNER_BY_ID].scanner == "likely"
    assert found[SCANNER_BY_ID].label == "Honeywell Imaging & Mobility 1900"
    assert found[SCANNER_BY_ID].vendor_product == "0c2e:0b61"
    assert found["/dev/input/by-id/usb-Cherry_USB_Keyboard-event-kbd"].scanner == "possible"
    assert found["/dev/input/by-id/usb-Logitech_USB_Receiver-event-mouse"].scanner == "no"
    assert found[SERIAL_SCANNER].scanner == "likely"
    assert found[SERIAL_SCANNER].vendor_product == "05f9:4204"
    # The udev name is the one offered; the by-id link is the same device.
    assert found["/dev/posd-display"].aliases == (DISPLAY_BY_ID,)
    assert found["/dev/posd-display"].scanner == "no"


def test_a_device_that_is_unplugged_is_not_listed(root: Path) -> None:
    (root / "dev/input/event3").unlink()  # the link stays behind, dangling
    names = [d.name for d in inventory(root).devices]
    assert SCANNER_BY_ID not in names


# ---------------------------------------------------------------- scripted runs


def test_provisioning_with_flags_writes_a_config_that_starts_and_a_private_ledger(
    runner: CliRunner, root: Path, pki: Pki, password_file: Path
) -> None:
    result = provision(runner, root, *full_flags(pki, password_file), "--yes")
    assert result.exit_code == 0, result.output
    config_file = root / "etc/posd/posd.toml"
    config = load_config(config_file)  # what `posd run` reads
    assert (config.terminal.id, config.terminal.branch) == ("T-0042", "BR-017")
    scanner = config.scanners[0]
    assert (scanner.kind, scanner.device, scanner.layout) == ("evdev", SCANNER_BY_ID, "de")  # type: ignore[union-attr]
    assert config.display is not None and config.display.port == "/dev/posd-display"
    assert config.display.model == "cd5220"
    assert config.printer is not None and config.printer.transport == "network"
    assert config.gpio is not None and config.gpio.pins.buzzer == 18
    assert config.replication is not None
    assert tomllib.loads(config_file.read_text())["replication"] == {
        "url": "mqtts://mqtt.example.com:8883",
        "username": "T-0042",
        "password_file": "/etc/posd/mqtt-password",
        "ca_file": "/etc/posd/hq-ca.pem",
    }
    # The secret is in its own 0600 file, never in the configuration or on screen.
    assert "s3cret" not in config_file.read_text() and "s3cret" not in result.output
    assert (root / "etc/posd/mqtt-password").read_text() == "s3cret-Pa55\n"
    assert mode_of(root / "etc/posd/mqtt-password") == 0o600
    assert (root / "etc/posd/hq-ca.pem").read_bytes() == pki.ca.read_bytes()
    assert mode_of(config_file) == 0o640
    ledger_file = root / "var/lib/posd/ledger.db"
    assert mode_of(ledger_file) == 0o600 and mode_of(ledger_file.parent) == 0o700
    with Ledger.open(ledger_file) as ledger:
        assert (ledger.terminal, ledger.branch) == ("T-0042", "BR-017")
    checked = runner.invoke(build(), ["config", "check", str(config_file)])
    assert checked.exit_code == 0, checked.output


def test_the_kind_of_scanner_follows_the_device(runner: CliRunner, root: Path) -> None:
    result = provision(runner, root, "--terminal", "T1", "--branch", "B1",
                       "--scanner", SERIAL_SCANNER, "--yes")  # fmt: skip
    assert result.exit_code == 0, result.output
    scanner = load_config(root / "etc/posd/posd.toml").scanners[0]
    assert scanner.kind == "serial" and scanner.port == SERIAL_SCANNER  # type: ignore[union-attr]


def test_client_certificate_login_installs_the_key_privately(
    runner: CliRunner, root: Path, pki: Pki
) -> None:
    result = provision(runner, root, "--terminal", "T1", "--branch", "B1",
                       "--hq-url", "mqtts://hq.example.com:8883", "--ca-file", str(pki.ca),
                       "--cert-file", str(pki.client_cert), "--key-file", str(pki.client_key),
                       "--yes")  # fmt: skip
    assert result.exit_code == 0, result.output
    load_config(root / "etc/posd/posd.toml")  # starts
    replication = tomllib.loads((root / "etc/posd/posd.toml").read_text())["replication"]
    assert "username" not in replication and "password_file" not in replication
    assert replication["cert_file"] == "/etc/posd/terminal.crt"
    assert mode_of(root / "etc/posd/terminal.key") == 0o600
    assert (root / "etc/posd/terminal.key").read_bytes() == pki.client_key.read_bytes()


# ------------------------------------------------------------------ interactive


def test_interactive_provisioning_asks_with_the_attached_devices_as_choices(
    runner: CliRunner, root: Path, pki: Pki
) -> None:
    typed = "\n".join(
        [
            "T-7",  # terminal id
            "NORTH",  # branch
            "Kowalski Tools",  # store name
            "",  # mode: cashier
            SCANNER_BY_ID,  # scanner
            "",  # its keyboard layout: us
            "",  # display: the udev-named one
            "",  # display command set: epson
            "tcp://192.0.2.10:9100",  # printer
            "n",  # a screen for the lane screen: no
            "mqtts://mqtt.example.com:8883",  # broker
            str(pki.ca),  # CA certificate
            "",  # log in with: password
            "",  # username: the terminal id
            "typed-Secret-1",  # password
            "typed-Secret-1",  # again
            "y",  # write it
        ]
    )
    result = provision(runner, root, input=typed + "\n")
    assert result.exit_code == 0, result.output
    assert "Scanner" in result.output and SCANNER_BY_ID in result.output
    assert "typed-Secret-1" not in result.output  # the password is never echoed
    config = load_config(root / "etc/posd/posd.toml")
    assert config.terminal.id == "T-7" and config.terminal.mode == "cashier"
    assert config.display is not None and config.display.port == "/dev/posd-display"
    settings = tomllib.loads((root / "etc/posd/posd.toml").read_text())
    assert settings["replication"]["username"] == "T-7"
    assert (root / "etc/posd/mqtt-password").read_text() == "typed-Secret-1\n"
    assert "typed-Secret-1" not in (root / "etc/posd/posd.toml").read_text()
    assert config.screen.enabled is False and "posd-screen" not in result.output


def test_an_interactive_rerun_offers_the_current_answers(
    runner: CliRunner, root: Path, pki: Pki, password_file: Path
) -> None:
    first = provision(runner, root, *full_flags(pki, password_file), "--yes")
    assert first.exit_code == 0, first.output
    before = (root / "etc/posd/posd.toml").read_bytes()
    # Enter through every question: terminal, branch, store name, mode, scanner, layout,
    # display, model, printer, screen, broker, CA, login, username, password (kept)
    # twice, then confirm.
    result = provision(runner, root, input="\n" * 16 + "y\n")
    assert result.exit_code == 0, result.output
    assert "T-0042" in result.output  # offered as the default
    assert (root / "etc/posd/posd.toml").read_bytes() == before
    assert (root / "etc/posd/mqtt-password").read_text() == "s3cret-Pa55\n"


# --------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--scanner", "/dev/input/event3"], "scanners[0].device: '/dev/input/event3'"),
        (["--display", "/dev/ttyUSB0"], "display.port: '/dev/ttyUSB0'"),
        (["--mode", "self_checkout"], "attendants: a self-checkout lane needs"),
        (["--gpio", "green=17,green=x"], "gpio.pins: 'green=x'"),
        (["--hq-url", "https://hq.example.com"], "url 'https://hq.example.com' must look like"),
        (["--printer", "lp0"], "printer: 'lp0'"),
        (["--terminal", "T 1"], "terminal id 'T 1' must be"),
    ],
)
def test_a_bad_answer_is_refused_naming_the_key_and_nothing_is_written(
    runner: CliRunner, root: Path, flags: list[str], named: str
) -> None:
    result = provision(runner, root, "--terminal", "T1", "--branch", "B1", *flags, "--yes")
    assert result.exit_code == 78, result.output
    assert named in result.output
    assert not (root / "etc/posd/posd.toml").exists()
    assert not (root / "var/lib/posd/ledger.db").exists()


def test_a_broker_file_that_is_not_what_it_should_be_is_refused(
    runner: CliRunner, root: Path, pki: Pki, password_file: Path
) -> None:
    result = provision(runner, root, "--terminal", "T1", "--branch", "B1",
                       "--hq-url", "mqtts://hq.example.com:8883", "--ca-file", str(password_file),
                       "--username", "T1", "--password-file", str(pki.ca), "--yes")  # fmt: skip
    assert result.exit_code == 78
    assert f"replication.ca_file: {password_file} is not a PEM certificate" in result.output
    assert "replication.password_file:" in result.output
    missing = provision(runner, root, "--terminal", "T1", "--branch", "B1",
                        "--hq-url", "mqtts://hq.example.com:8883", "--username", "T1",
                        "--yes")  # fmt: skip
    assert missing.exit_code == 78
    assert "replication.password_file: /etc/posd/mqtt-password is not on this terminal" in (
        missing.output
    )


# ------------------------------------------------------------------- re-running


def test_running_it_again_with_the_same_answers_changes_nothing(
    runner: CliRunner, root: Path, pki: Pki, password_file: Path
) -> None:
    flags = full_flags(pki, password_file)
    assert provision(runner, root, *flags, "--yes").exit_code == 0
    config_file = root / "etc/posd/posd.toml"
    ledger_file = root / "var/lib/posd/ledger.db"
    with Ledger.open(ledger_file) as ledger:
        epoch = ledger.epoch
        ledger.define_product("LAP", "Laptop", actor="setup")
    text, stamp = config_file.read_bytes(), config_file.stat().st_mtime_ns
    again = provision(runner, root, *flags, "--yes")
    assert again.exit_code == 0, again.output
    assert "unchanged /etc/posd/posd.toml" in again.output
    assert "unchanged /var/lib/posd/ledger.db" in again.output
    assert config_file.read_bytes() == text and config_file.stat().st_mtime_ns == stamp
    # No flags at all: everything is taken from the terminal as it is.
    bare = provision(runner, root, "--yes")
    assert bare.exit_code == 0, bare.output
    assert config_file.read_bytes() == text
    with Ledger.open(ledger_file) as ledger:
        assert ledger.epoch == epoch  # the same ledger, never made anew
        assert ledger.product("LAP") is not None


def test_keys_edited_by_hand_survive_a_rerun_and_a_change_keeps_the_previous_file(
    runner: CliRunner, root: Path
) -> None:
    assert provision(runner, root, "--terminal", "T1", "--branch", "B1", "--yes").exit_code == 0
    config_file = root / "etc/posd/posd.toml"
    with config_file.open("a") as file:
        file.write("\n[lane]  # slow scanners here\nserial_timeout_s = 20.0\n")
    edited = config_file.read_text()
    result = provision(runner, root, "--printer", "tcp://192.0.2.10:9100", "--yes")
    assert result.exit_code == 0, result.output
    settings = tomllib.loads(config_file.read_text())
    assert settings["lane"] == {"serial_timeout_s": 20.0}
    assert settings["printer"] == {"transport": "network", "host": "192.0.2.10", "port": 9100}
    assert (root / "etc/posd/posd.toml.previous").read_text() == edited


def test_a_changed_terminal_id_for_an_existing_ledger_is_refused(
    runner: CliRunner, root: Path
) -> None:
    assert provision(runner, root, "--terminal", "T1", "--branch", "B1", "--yes").exit_code == 0
    config_file = root / "etc/posd/posd.toml"
    text = config_file.read_bytes()
    result = provision(runner, root, "--terminal", "T2", "--branch", "B1", "--yes")
    assert result.exit_code == 78
    assert "the ledger at /var/lib/posd/ledger.db belongs to terminal T1" in result.output
    assert "Keep --terminal T1" in result.output
    assert config_file.read_bytes() == text
    moved = provision(runner, root, "--terminal", "T1", "--branch", "B9", "--yes")
    assert moved.exit_code == 78
    assert "terminal.branch: the ledger at /var/lib/posd/ledger.db belongs to branch B1" in (
        moved.output
    )


def test_a_configuration_that_is_not_toml_is_not_overwritten(runner: CliRunner, root: Path) -> None:
    config_file = root / "etc/posd/posd.toml"
    config_file.parent.mkdir(parents=True)
    config_file.write_text("[terminal\nid = 'T1'\n")
    result = provision(runner, root, "--terminal", "T1", "--branch", "B1", "--yes")
    assert result.exit_code == 78
    assert "/etc/posd/posd.toml: cannot be read" in result.output
    assert config_file.read_text() == "[terminal\nid = 'T1'\n"


def test_yes_without_an_identity_says_which_option_is_missing(
    runner: CliRunner, root: Path
) -> None:
    result = provision(runner, root, "--branch", "B1", "--yes")
    assert result.exit_code == 2
    assert "--terminal is required" in result.output
    assert not os.path.exists(root / "etc/posd/posd.toml")


def test_the_engineer_says_whether_the_terminal_has_a_screen(
    runner: CliRunner, root: Path, pki: Pki, password_file: Path
) -> None:
    first = provision(runner, root, *full_flags(pki, password_file), "--yes")
    assert first.exit_code == 0, first.output
    assert load_config(root / "etc/posd/posd.toml").screen.enabled  # served unless told not
    assert "systemctl enable --now posd-screen" in first.output
    result = provision(runner, root, "--no-screen", "--yes")
    assert result.exit_code == 0, result.output
    assert load_config(root / "etc/posd/posd.toml").screen.enabled is False
    assert "posd-screen" not in result.output
    again = provision(runner, root, "--yes")  # a re-run keeps the answer
    assert load_config(root / "etc/posd/posd.toml").screen.enabled is False, again.output
    back = provision(runner, root, "--screen", "--yes")
    assert load_config(root / "etc/posd/posd.toml").screen.enabled is True, back.output
    assert "systemctl enable --now posd-screen" in back.output


def test_a_rerun_keeps_the_engineers_comments_byte_for_byte_but_the_changed_values(
    runner: CliRunner, root: Path
) -> None:
    first = provision(runner, root, "--terminal", "T1", "--branch", "B1",
                      "--store-name", "Kowalski Tools", "--scanner", SCANNER_BY_ID,
                      "--printer", "tcp://192.0.2.10:9100", "--yes")  # fmt: skip
    assert first.exit_code == 0, first.output
    config_file = root / "etc/posd/posd.toml"
    written = config_file.read_text()
    edited = (
        "# Till 3, by the back door. Ask Sam before changing the printer.\n"
        + written.replace('"Kowalski Tools"', '"Kowalski Tools"  # as on the sign')
        .replace("[printer]", "[printer]  # the Epson under the counter")
        .replace('host = "192.0.2.10"', '# fixed lease on the router\nhost = "192.0.2.10"  # DHCP')
        + "\n[lane]\n# slow scanners here\nserial_timeout_s = 20.0   # seconds\n"
    )  # fmt: skip
    config_file.write_text(edited)
    again = provision(runner, root, "--store-name", "Kowalski Tools & Garden",
                      "--printer", "tcp://192.0.2.11:9100", "--layout", "de", "--yes")  # fmt: skip
    assert again.exit_code == 0, again.output
    expected = (
        edited.replace('"Kowalski Tools"', '"Kowalski Tools & Garden"')
        .replace('"192.0.2.10"', '"192.0.2.11"')
        .replace(f'device = "{SCANNER_BY_ID}"\n', f'device = "{SCANNER_BY_ID}"\nlayout = "de"\n')
    )
    assert config_file.read_text() == expected
    assert (root / "etc/posd/posd.toml.previous").read_text() == edited
    # The same answers again: not a byte moves.
    same = provision(runner, root, "--yes")
    assert same.exit_code == 0 and "unchanged /etc/posd/posd.toml" in same.output
    assert config_file.read_text() == expected


# ---------------------------------------------------------------- the broker user name


@pytest.mark.parametrize("username", ["T-0042/#", "+", "#", "T 42", "T-0042\n"])
def test_a_broker_user_name_that_would_widen_the_acl_is_refused(
    runner: CliRunner, root: Path, pki: Pki, password_file: Path, username: str
) -> None:
    # The broker ACL grants `posd/v1/t/%u/#`: a user named "+" would be granted every
    # terminal's topics, "T-0042/#" more than its own.
    flags = full_flags(pki, password_file)
    flags[flags.index("--username") + 1] = username
    result = provision(runner, root, *flags, "--yes")
    assert result.exit_code != 0
    assert "replication.username" in result.output and "broker user name" in result.output
    assert "Traceback" not in result.output
    assert not (root / "etc/posd/posd.toml").exists()


def test_every_user_in_the_example_acl_is_a_name_provisioning_accepts() -> None:
    from daemon.config.replication import ReplicationConfig

    acl = (Path(__file__).parent.parent / "systemd/mosquitto/acl").read_text()
    users = [line.split(None, 1)[1] for line in acl.splitlines() if line.startswith("user ")]
    assert users
    for user in users:
        ReplicationConfig(username=user)  # raises for a name that widens %u patterns
    # and the guidance says which names those are
    assert "/ + #" in acl
