"""The lane's configuration file: everything it may say, and every way it can be wrong,
each refused at start-up with the key named and the bad value quoted."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from daemon.cli import build
from daemon.config.model import ConfigFileError, load_config, parse_config
from daemon.config.pins import hash_pin, verify_pin
from simulators.lane import SimulatedLane, to_toml

PIN_HASH = hash_pin("4821", salt=b"0123456789abcdef")

FULL = f"""
[terminal]
id = "T-0042"
branch = "BR-017"
mode = "self_checkout"
store_name = "Kowalski Tools"
currency = "EUR"

[ledger]
path = "/var/lib/posd/ledger.db"

[logging]
level = "debug"

[[scanners]]
kind = "evdev"
device = "/dev/input/by-id/usb-Honeywell_1900-event-kbd"
layout = "de"
end_keys = ["tab"]
char_timeout_s = 0.05

[[scanners]]
kind = "serial"
name = "handheld"
port = "/dev/serial/by-id/usb-Datalogic_QD2430-if00"
baud = 115200
framing = "7E1"
terminator = "CRLF"

[display]
port = "/dev/posd-display"
model = "cd5220"
baud = 19200

[printer]
transport = "network"
host = "192.168.1.50"
profile = "TM-T88V"
drawer_kick = true

[gpio]
pin_factory = "lgpio"
pins = {{ green = 17, amber = 27, red = 22, buzzer = 18, drawer = 23, button = 24 }}

[api]
port = 8800

[barcode]
gs_stand_in = "|"

[[attendants]]
name = "Mia"
badge = "BADGE-0042"
pin_hash = "{PIN_HASH}"

[lane]
serial_timeout_s = 20
return_disposition = "in_stock"

[replication]
url = "mqtts://hq.example.com:8883"
"""


def test_a_whole_configuration_reads_as_written(tmp_path: Path) -> None:
    path = tmp_path / "posd.toml"
    path.write_text(FULL)
    config = load_config(path)
    assert config.self_checkout and config.terminal.id == "T-0042"
    evdev, serial = config.scanners
    assert (evdev.kind, evdev.layout, evdev.end_keys) == ("evdev", "de", ["tab"])
    assert (serial.kind, serial.baud, serial.framing, serial.name) == (
        "serial",
        115200,
        "7E1",
        "handheld",
    )
    assert config.display is not None and config.display.baud == 19200
    assert config.printer is not None and config.printer.transport == "network"
    assert config.printer.port == 9100  # the default JetDirect port
    assert config.gpio is not None and config.gpio.pins.button == 24
    assert config.barcode.options().gs_stand_in == "|"
    assert config.attendants[0].badge == "BADGE-0042"
    assert config.lane.disposition().value == "in_stock"
    assert (
        config.replication is not None and config.replication.url == "mqtts://hq.example.com:8883"
    )
    assert config.api.host == "127.0.0.1"


def test_the_least_a_lane_needs() -> None:
    config = parse_config({"terminal": {"id": "T1", "branch": "B1"}, "ledger": {"path": "l.db"}})
    assert not config.scanners and config.display is None and config.operator == "lane T1"


BASE = {"terminal": {"id": "T1", "branch": "B1"}, "ledger": {"path": "l.db"}}

# (what is changed, the line that must be in the error)
BAD = [
    (
        {"display": {"port": "/dev/posd-display", "baud": 1234}},
        "display.baud: must be one of 2400, 4800, 9600, 19200 (got 1234)",
    ),
    ({"display": {"port": "/dev/posd-display", "speed": 9600}}, "display.speed: unknown key"),
    ({"displya": {}}, "displya: unknown key"),
    (
        {"display": {"port": "/dev/ttyUSB0"}},
        "display.port: '/dev/ttyUSB0' is numbered by the kernel and moves after a replug",
    ),
    (
        {"scanners": [{"kind": "evdev", "device": "/dev/input/event3"}]},
        "scanners[0].device: '/dev/input/event3' is numbered by the kernel",
    ),
    (  # an answer typed at the wrong prompt is no device
        {"scanners": [{"kind": "evdev", "device": "Mia=BADGE-0042"}]},
        "scanners[0].device: 'Mia=BADGE-0042' is not a device: give its path",
    ),
    (
        {"display": {"port": "posd display"}},
        "display.port: 'posd display' is not a device: give its path",
    ),
    (
        {"scanners": [{"kind": "serial", "port": "/dev/x", "baud": "fast"}]},
        "scanners[0].baud: must be one of 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200",
    ),
    (
        {"scanners": [{"kind": "usb", "port": "/dev/x"}]},
        "scanners[0].kind: must be one of evdev, serial (got 'usb')",
    ),
    ({"scanners": [{"port": "/dev/x"}]}, "scanners[0].kind: is required (one of evdev, serial)"),
    (
        {"scanners": [{"kind": "serial", "port": "/dev/x", "framing": "9Z1"}]},
        "scanners[0].framing: must match pattern",
    ),
    ({"scanners": {"kind": "serial"}}, "scanners: must be a list"),
    (
        {"printer": {"transport": "network", "host": "h", "port": 99999}},
        "printer.port: must be less than or equal to 65535 (got 99999)",
    ),
    (
        {"printer": {"device": "/dev/usb/lp0"}},
        "printer.transport: is required (one of serial, file, network)",
    ),
    (
        {"gpio": {"pin_factory": "fake"}},
        "gpio.pin_factory: must be one of native, lgpio, rpigpio, pigpio, mock (got 'fake')",
    ),
    ({"gpio": {"pins": {"green": "x"}}}, "gpio.pins.green: must be a whole number (got 'x')"),
    ({"api": {"host": "0.0.0.0"}}, "api.host: '0.0.0.0' is not a loopback address"),
    ({"barcode": {"gs_stand_in": "A"}}, "gs_stand_in 'A' must be one character"),
    (
        {"attendants": [{"name": "Mia", "pin": "1234"}]},
        "attendants[0].pin: unknown key; plain PINs are never stored",
    ),
    (
        {"attendants": [{"name": "Mia", "pin_hash": "1234"}]},
        "attendants[0].pin_hash: pin_hash '1234' is not a PIN hash",
    ),
    ({"attendants": [{"name": "Mia"}]}, "attendant 'Mia' needs a badge or a pin_hash"),
    ({"terminal": {"id": "T 1", "branch": "B"}}, "terminal.id: terminal id 'T 1' must be"),
    (
        {"terminal": {"id": "T1", "branch": "B", "mode": "kiosk"}},
        "terminal.mode: must be one of cashier, self_checkout (got 'kiosk')",
    ),
    (
        {"terminal": {"id": "T1", "branch": "B", "mode": "self_checkout"}},
        "attendants: a self-checkout lane needs at least one attendant",
    ),
    ({"lane": {"serial_timeout_s": -1}}, "lane.serial_timeout_s: must be greater than 0 (got -1)"),
    ({"logging": {"level": "loud"}}, "logging.level: must be one of debug, info, warning"),
    ({"ledger": {}}, "ledger.path: is required"),
]


@pytest.mark.parametrize(("change", "message"), BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_a_bad_key_or_value_is_named(change: dict, message: str) -> None:
    with pytest.raises(ConfigFileError) as refused:
        parse_config({**BASE, **change}, "posd.toml")
    assert any(message in line for line in refused.value.problems), refused.value.problems


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigFileError) as refused:
        parse_config({**BASE, "display": {"port": "/x", "baud": 1}, "api": {"prot": 1}})
    assert len(refused.value.problems) == 2


def test_a_file_that_is_not_toml_or_not_there(tmp_path: Path) -> None:
    broken = tmp_path / "posd.toml"
    broken.write_text("[terminal\nid = 1")
    with pytest.raises(ConfigFileError, match="is not valid TOML"):
        load_config(broken)
    with pytest.raises(ConfigFileError, match="cannot be read"):
        load_config(tmp_path / "missing.toml")


def test_the_simulated_lane_writes_a_configuration_posd_accepts(tmp_path: Path) -> None:
    lane = SimulatedLane(
        tmp_path, mode="self_checkout", attendants=[{"name": "Mia", "badge": "B-123"}]
    )
    try:
        config = load_config(lane.write_config(tmp_path / "posd.toml"))
        assert config.scanners[0].port == lane.scanner.port and config.gpio is None
        assert parse_config(lane.config()).gpio is not None
    finally:
        lane.close()
    assert "[[scanners]]" in to_toml({"scanners": [{"kind": "serial"}]})


# ----------------------------------------------------------------- the command line


def test_posd_config_check_says_ok_or_names_every_bad_key(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(FULL)
    result = CliRunner().invoke(build(), ["config", "check", str(good)])
    assert result.exit_code == 0 and "OK" in result.output and "T-0042" in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text(
        FULL.replace("baud = 19200", "baud = 1234").replace("[api]", "[api]\nhost = 'x'")
    )
    result = CliRunner().invoke(build(), ["config", "check", str(bad)])
    assert result.exit_code == 78  # EX_CONFIG: systemd does not restart for this
    assert "display.baud: must be one of 2400, 4800, 9600, 19200 (got 1234)" in result.output
    assert "api.host:" in result.output
    result = CliRunner().invoke(build(), ["config", "check", str(bad), "--json"])
    assert json.loads(result.output)["ok"] is False


def test_posd_run_refuses_a_bad_configuration_before_opening_anything(tmp_path: Path) -> None:
    bad = tmp_path / "posd.toml"
    bad.write_text(
        textwrap.dedent("""
        [terminal]
        id = "T1"
        branch = "B1"
        colour = "blue"
        [ledger]
        path = "l.db"
    """)
    )
    result = CliRunner().invoke(build(), ["run", "--config", str(bad)])
    assert result.exit_code == 78 and "terminal.colour: unknown key" in result.output


def test_posd_config_hash_pin_makes_a_hash_that_checks(tmp_path: Path) -> None:
    result = CliRunner().invoke(build(), ["config", "hash-pin", "--pin", "4821"])
    assert result.exit_code == 0, result.output
    line = result.output.strip()
    assert line.startswith('pin_hash = "scrypt$') and "4821" not in line
    stored = line.split('"')[1]
    assert verify_pin("4821", stored) and not verify_pin("4822", stored)
    result = CliRunner().invoke(build(), ["config", "hash-pin", "--pin", "12"])
    assert result.exit_code != 0 and "4 to 12 digits" in result.output


def test_a_scanner_named_by_vendor_and_product_is_a_device() -> None:
    for name in ("05e0:1200", "usb:0C2E:0B61"):
        config = parse_config(BASE | {"scanners": [{"kind": "evdev", "device": name}]})
        assert config.scanners[0].device == name  # type: ignore[union-attr]
