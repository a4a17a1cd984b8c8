"""`posd provision`, `posd devices` and `posd doctor`: the field engineer's tools."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from daemon.cli.exits import config_failure, error_body
from daemon.cli.run_commands import EX_CONFIG, config_option


def register(group: click.Group) -> None:
    group.add_command(provision)
    group.add_command(devices)
    group.add_command(doctor)


class _ScannerKinds(click.Choice):  # type: ignore[type-arg]
    """The scanner kinds the drivers register (`evdev`, `serial`, …), looked up when the
    option is read: importing the drivers would slow every other `posd` command."""

    def __init__(self) -> None:
        super().__init__(())

    @property
    def choices(self) -> tuple[str, ...]:
        from daemon.drivers.kinds import KINDS
        from daemon.drivers.scanner import SCANNER

        return KINDS.names(SCANNER)

    @choices.setter
    def choices(self, _given: object) -> None:
        pass  # what the registry holds, always


class _Spelled(click.Choice):  # type: ignore[type-arg]
    """A choice as people type it: `self-checkout` or `Self Checkout` is `self_checkout`."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from daemon.config.spelling import spelled

        if isinstance(value, str) and (found := spelled(value, map(str, self.choices))):
            return found
        return super().convert(value, param, ctx)


_root_option = click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/"),
    show_default=True,
    help="The terminal's filesystem: / here, or a mounted image or folder to write into.",
)


@click.command(
    help="List input and serial devices by their stable names; say which may be scanners."
)
@_root_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def devices(root: Path, as_json: bool) -> None:
    from daemon.provision.inventory import inventory

    found = inventory(root)
    if as_json:
        click.echo(json.dumps({"devices": [d.as_dict() for d in found.devices]}, indent=2))
        return
    _show_devices(found)


def _show_devices(found: Any) -> None:
    if not found.devices:
        click.echo("No input or serial devices with a stable name are attached.")
        return
    click.echo("Devices attached (stable names only; eventN and ttyUSBn move after a replug):")
    for device in found.devices:
        ids = f" [{device.vendor_product}]" if device.vendor_product else ""
        mark = {"likely": "scanner? yes", "possible": "scanner? maybe", "no": ""}
        click.echo(f"  {mark[device.scanner]:<15}{device.name}")
        click.echo(f"  {'':<15}{device.kind}: {device.label}{ids}; {device.why}")
        for alias in device.aliases:
            click.echo(f"  {'':<15}also {alias}")


@click.command(
    help="Set up this terminal: identity, branch, HQ broker login and devices. Writes "
    "/etc/posd/posd.toml (0640) and creates the ledger if there is none; asks for what "
    "is not given unless --yes. Safe to run again."
)
@click.option("--terminal", help="This terminal's id, e.g. T-0042 (unique in the chain).")
@click.option("--branch", help="The branch (store) this terminal belongs to.")
@click.option("--mode", type=_Spelled(["cashier", "self_checkout"]), help="Lane mode.")
@click.option("--store-name", help="Store name printed at the top of receipts.")
@click.option("--hq-url", help="HQ's MQTT broker, mqtts://host:8883 (none: no replication).")
@click.option(
    "--ca-file", type=click.Path(path_type=Path), help="CA certificate that signed the broker's."
)
@click.option(
    "--cert-file", type=click.Path(path_type=Path), help="Client certificate (certificate login)."
)
@click.option("--key-file", type=click.Path(path_type=Path), help="Its private key.")
@click.option("--username", help="Broker username (password login; default the terminal id).")
@click.option(
    "--password-file",
    type=click.Path(path_type=Path),
    help="A file holding the broker password; installed as a 0600 file, never in the TOML.",
)
@click.option("--scanner", help="Scanner by stable name or vendor:product (none: no scanner).")
@click.option(
    "--scanner-kind",
    type=_ScannerKinds(),
    help="Keyboard-mode (evdev) or serial scanner; default: from the device.",
)
@click.option("--layout", help="Keyboard layout a keyboard-mode scanner types in (us, de, fr…).")
@click.option("--display", help="Customer display's serial port by stable name (or none).")
@click.option("--display-model", type=_Spelled(["epson", "cd5220"]), help="Display command set.")
@click.option(
    "--printer", help="Printer: /dev/posd-printer, serial:/dev/serial/by-id/…, tcp://host:9100."
)
@click.option("--gpio", help="Lane GPIO pins, e.g. green=17,amber=27,red=22,buzzer=18 (or none).")
@click.option(
    "--pin-factory",
    type=_Spelled(["native", "lgpio", "rpigpio", "pigpio", "mock"]),
    help="gpiozero pin factory (lgpio on a Raspberry Pi).",
)
@click.option(
    "--attendant",
    "attendants",
    multiple=True,
    help="NAME=BADGE of an attendant who may release a self-checkout (repeatable).",
)
@click.option(
    "--screen/--no-screen",
    default=None,
    help="Whether the terminal has a screen to show the lane screen on (posd-screen.service).",
)
@_root_option
@click.option("--yes", is_flag=True, help="Ask nothing: take the rest from the terminal as it is.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
def provision(root: Path, yes: bool, as_json: bool, **options: Any) -> None:
    from daemon.provision.files import Owner
    from daemon.provision.inventory import inventory
    from daemon.provision.plan import ProvisionError, apply, current, plan
    from daemon.provision.prompts import Given, answers

    found = inventory(root)
    if not as_json:
        _show_devices(found)
    try:
        now = current(root)
        given = Given(options, ask=not yes)
        planned = plan(answers(given, now, found), now)
    except ProvisionError as refused:
        _refused(refused.problems, as_json)
        sys.exit(EX_CONFIG)
    if not yes and not as_json:
        click.echo(f"\nThe configuration ({root / 'etc/posd/posd.toml'}):\n")
        click.echo(planned.text)
        click.confirm(
            "Write it (and create the ledger if there is none)?", default=True, abort=True
        )
    owner = Owner.on_this_system() if root == Path("/") else None
    done = apply(planned, owner)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": True,
                    "written": done.written,
                    "unchanged": done.unchanged,
                    "ledger_epoch": done.ledger_epoch,
                    "warnings": list(planned.warnings),
                },
                indent=2,
            )
        )
        return
    for path in done.written:
        click.echo(f"wrote     {path}")
    for path in done.unchanged:
        click.echo(f"unchanged {path}")
    if done.ledger_epoch:
        click.echo(
            f"new ledger for terminal {planned.config.terminal.id} at branch "
            f"{planned.config.terminal.branch}, epoch {done.ledger_epoch}"
        )
    for warning in planned.warnings:
        click.echo(f"note: {warning}")
    if owner is None and root == Path("/"):
        click.echo(
            "note: files are owned by the user who ran this; on the terminal run it as root "
            "after systemd-sysusers made the posd user, so the service can read them"
        )
    click.echo("next: posd doctor   (self-test), then: systemctl enable --now posd")
    if planned.config.screen.enabled:
        click.echo("      and for the lane screen: systemctl enable --now posd-screen")


def _refused(problems: list[str], as_json: bool) -> None:
    if as_json:
        message = "this terminal would not start with these answers: " + "; ".join(problems)
        payload = error_body("ProvisionError", message) | {"problems": problems}
        click.echo(json.dumps(payload, indent=2))
        return
    click.echo("refused: this terminal would not start with these answers:", err=True)
    for problem in problems:
        click.echo(f"  - {problem}", err=True)


@click.command(
    help="Self-test this terminal: test ticket, display pattern, light and buzzer, a scan, "
    "the HQ broker login, the ledger's integrity and hash chain, disk and clock. Stop posd "
    "first (it holds the devices). Exit 1 when something the store depends on is broken."
)
@config_option
@click.option("--no-scan", is_flag=True, help="Do not wait for a test scan.")
@click.option(
    "--scan-timeout",
    type=click.FloatRange(min=1, max=600),
    default=30.0,
    show_default=True,
    help="Seconds to wait for the test scan.",
)
@click.option("--open-drawer", is_flag=True, help="Also open the cash drawer.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def doctor(
    config_path: str, no_scan: bool, scan_timeout: float, open_drawer: bool, as_json: bool
) -> None:
    from daemon.config.model import ConfigFileError, load_config

    # A handler before the drivers are imported: python-escpos otherwise sets up its own
    # and prints its notes into the report.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from daemon.doctor.checkup import render, run_doctor
    from daemon.doctor.findings import Context, DoctorOptions, Status

    try:
        config = load_config(config_path)
    except ConfigFileError as error:
        if as_json:
            click.echo(json.dumps(config_failure(config_path, error.problems)))
        else:
            _refused_config(error.source, error.problems)
        sys.exit(EX_CONFIG)
    options = DoctorOptions(scan=not no_scan, scan_timeout_s=scan_timeout, open_drawer=open_drawer)
    context = Context(
        config, options, config_path=Path(config_path), say=lambda text: click.echo(text, err=True)
    )
    # Only the report on standard output (python-escpos prints notes of its own).
    with contextlib.redirect_stdout(sys.stderr):
        report = run_doctor(context)
    if as_json:
        payload = report.as_dict()
        if report.broken:
            failed = [f"{f.check} ({f.detail})" for f in report.findings if f.status is Status.FAIL]
            payload |= error_body("doctor_fail", "checks failed: " + ", ".join(failed))
        click.echo(json.dumps(payload, indent=2))
    else:
        click.echo(render(report, config_path))
    sys.exit(report.exit_status)


def _refused_config(source: str, problems: list[str]) -> None:
    click.echo(f"{source}: the configuration cannot be used:", err=True)
    for problem in problems:
        click.echo(f"  - {problem}", err=True)
