"""`posd simulate`: try posd without hardware and without writing Python.

    posd simulate                       # devices up; prints what started, runs until Ctrl-C
    posd doctor --config FOLDER/posd.toml
    posd run --config FOLDER/posd.toml
    posd simulate scan LX-0001          # from another shell: the scanner reads a barcode
    posd simulate paper-out | paper-in | cover-open | cover-close
    posd simulate unplug scanner|display|printer ; posd simulate replug …
    posd simulate status [--json]       # what the glass shows, the last receipt

The command is added to `posd` through the `posd.commands` entry point group, so the
daemon never imports the simulators. The simulation's folder is `--folder`, else
POSD_SIMULATION, else `posd-simulation` in XDG_RUNTIME_DIR (or the temporary folder).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import click


def default_folder() -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "posd-simulation"
    return Path(tempfile.gettempdir()) / f"posd-simulation-{os.getuid()}"


def _folder_option_named(name: str) -> Any:
    return click.option(
        "--folder",
        name,
        envvar="POSD_SIMULATION",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="The simulation's folder (or set POSD_SIMULATION; default: posd-simulation in "
        "XDG_RUNTIME_DIR or the temporary folder).",
    )


_folder_option = _folder_option_named("folder")
_here_option = _folder_option_named("here")  # a subcommand's own --folder


@click.group(
    invoke_without_command=True,
    help="Simulated scanner, display, printer and pins on real transports, with a "
    "configuration for `posd doctor` and `posd run`; controls from another shell.",
)
@_folder_option
@click.pass_context
def simulate(ctx: click.Context, folder: Path | None) -> None:
    ctx.obj = folder or default_folder()
    if ctx.invoked_subcommand is None:
        ctx.invoke(start)


@simulate.command(help="Start the simulated devices and keep them running (Ctrl-C stops).")
@click.option(
    "--mode",
    type=click.Choice(["cashier", "self_checkout"]),
    default="cashier",
    show_default=True,
    help="The lane mode the configuration says.",
)
@click.option(
    "--printer",
    type=click.Choice(["network", "serial"]),
    default="network",
    show_default=True,
    help="Which of the printer's interfaces the configuration uses.",
)
@click.pass_obj
def start(folder: Path, mode: str, printer: str) -> None:
    from simulators.simulation import Simulation, running

    if running(folder):
        raise click.ClickException(
            f"a simulation is already running in {folder}; stop it, or give another --folder"
        )
    folder.mkdir(parents=True, exist_ok=True)
    simulation = Simulation(folder, mode=mode, printer=printer)
    try:
        simulation.start()
        _show(simulation.describe())

        def stop(_signal: int, _frame: object) -> None:
            simulation.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        simulation.serve()
    finally:
        simulation.close()
    click.echo("posd simulate: stopped; the devices are gone (the ledger and posd.toml stay)")


def _show(about: dict[str, Any]) -> None:
    folder, config = about["folder"], about["config"]
    printer = about["printer"]
    stock = ", ".join(f"{code} {' '.join(serials)}" for code, serials in about["stock"].items())
    lines = [
        f"posd simulate: terminal {about['terminal']} at branch {about['branch']} "
        f"({about['mode']}), in {folder}",
        f"  scanner  serial, a pty at {about['scanner']['port']} (CR ends a scan)",
        f"  display  Epson-style 2x20 pole display, a pty at {about['display']['port']}",
        f"  printer  ESC/POS on tcp {printer['address']} and a pty at {printer['port']} "
        f"(the configuration uses the {printer['transport']} one)",
        f"  gpio     {about['gpio']}",
        f"  ledger   {about['ledger']}: in stock {stock}",
        f"  config   {config}",
        "Try, in another shell:",
        f"  posd doctor --config {config}",
        f"  posd run --config {config}      (kiosk API and lane screen: {about['api']})",
        *(
            [f"  export POSD_SIMULATION={folder}      (so the controls below find it)"]
            if Path(folder) != default_folder()
            else []
        ),
        "  posd simulate scan LX-0001",
        "  posd simulate scan '#CMD:TENDER:CARD'      (a command barcode: pay by card)",
        "  posd simulate paper-out | paper-in | cover-open | cover-close",
        "  posd simulate unplug scanner|display|printer; posd simulate replug …",
        "  posd simulate status",
        "Ctrl-C stops the simulation.",
    ]
    click.echo("\n".join(lines), nl=True)
    sys.stdout.flush()


def _send(folder: Path, request: dict[str, Any]) -> dict[str, Any]:
    from simulators.simulation import ask

    try:
        reply = ask(folder, request)
    except ConnectionError as error:
        raise click.ClickException(str(error)) from None
    if not reply.get("ok"):
        raise click.ClickException(str(reply.get("error")))
    return reply


@simulate.command(help="The scanner reads BARCODE (as a person scanning it would).")
@click.argument("barcode")
@_here_option
@click.pass_obj
def scan(folder: Path, barcode: str, here: Path | None) -> None:
    click.echo(_send(here or folder, {"do": "scan", "text": barcode})["said"])


def _control(name: str, text: str) -> None:
    @simulate.command(name=name, help=text)
    @_here_option
    @click.pass_obj
    def control(folder: Path, here: Path | None) -> None:
        click.echo(_send(here or folder, {"do": name})["said"])


_control("paper-out", "The printer runs out of paper (it prints nothing until paper-in).")
_control("paper-in", "Paper is put back in the printer.")
_control("cover-open", "The printer's cover is opened.")
_control("cover-close", "The printer's cover is closed.")

_DEVICE = click.argument("device", type=click.Choice(["scanner", "display", "printer"]))


@simulate.command(help="Pull a device's cable: scanner, display or printer.")
@_DEVICE
@_here_option
@click.pass_obj
def unplug(folder: Path, device: str, here: Path | None) -> None:
    click.echo(_send(here or folder, {"do": "unplug", "device": device})["said"])


@simulate.command(help="Plug a device back in at the same path.")
@_DEVICE
@_here_option
@click.pass_obj
def replug(folder: Path, device: str, here: Path | None) -> None:
    click.echo(_send(here or folder, {"do": "replug", "device": device})["said"])


@simulate.command(help="What the devices show now: the glass, the printer, the last receipt.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_here_option
@click.pass_obj
def status(folder: Path, as_json: bool, here: Path | None) -> None:
    now = _send(here or folder, {"do": "status"})
    if as_json:
        click.echo(json.dumps(now, indent=2))
        return
    plugged = ", ".join(f"{d} {'in' if p else 'UNPLUGGED'}" for d, p in now["plugged"].items())
    click.echo(f"simulation in {now['folder']} (pid {now['pid']}): {plugged}")
    click.echo(f"  display  |{now['glass'][0]:<20}|")
    click.echo(f"           |{now['glass'][1]:<20}|")
    online = "online" if now["printer_online"] else "OFFLINE (paper out or cover open)"
    click.echo(f"  printer  {online}, {now['receipts']} receipt(s) printed")
    last = now["last_receipt"]
    if last:
        click.echo("  last receipt:")
        for line in last["text"].splitlines():
            click.echo(f"    | {line}")
