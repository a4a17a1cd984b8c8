"""`posd run` (the daemon) and `posd config check|hash-pin`."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import click

from daemon.cli.exits import ExitStatus, config_failure

DEFAULT_CONFIG = "/etc/posd/posd.toml"
# The lane's configuration file, as `posd run` and `posd doctor` take it.
config_option = click.option(
    "--config",
    "config_path",
    envvar="POSD_CONFIG",
    default=DEFAULT_CONFIG,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The lane's configuration file (or set POSD_CONFIG).",
)
# sysexits EX_CONFIG: the unit's RestartPreventExitStatus, as restarting cannot help.
EX_CONFIG = ExitStatus.CONFIG


def register(group: click.Group) -> None:
    group.add_command(run)
    group.add_command(config)


@click.command(help="Run the lane: scanners, display, printer, lights and the kiosk API.")
@config_option
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error", "critical"]),
    help="How much to log (default: the configuration's logging.level).",
)
def run(config_path: str, log_level: str | None) -> None:
    from daemon.config.model import ConfigFileError, load_config
    from daemon.journal import setup_logging

    try:
        loaded = load_config(config_path)
    except ConfigFileError as error:
        _print_problems(error.source, error.problems)
        sys.exit(EX_CONFIG)
    setup_logging(loaded.terminal.id, log_level or loaded.logging.level)
    # After the journal handler: python-escpos sets up logging of its own on import
    # unless the process already has a handler.
    from daemon.drivers.escpos_setup import load_escpos, state_directory

    load_escpos(state_directory(Path(loaded.ledger.path).parent))
    from daemon.lane.run import serve

    sys.exit(asyncio.run(serve(loaded)))


@click.group(help="Check a configuration file, or make a PIN hash for it.")
def config() -> None:
    pass


@config.command("check", help="Check a configuration file; name every bad key (exit 78).")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def check(path: str, as_json: bool) -> None:
    from daemon.config.model import ConfigFileError, load_config
    from daemon.drivers.kinds import KINDS

    try:
        loaded = load_config(path)
    except ConfigFileError as error:
        if as_json:
            click.echo(json.dumps(config_failure(path, error.problems)))
        else:
            _print_problems(error.source, error.problems)
        sys.exit(EX_CONFIG)
    summary = {
        "ok": True,
        "file": path,
        "terminal": loaded.terminal.id,
        "branch": loaded.terminal.branch,
        "mode": loaded.terminal.mode,
        "scanners": len(loaded.scanners),
        "display": loaded.display is not None,
        "printer": KINDS.kind_of(loaded.printer).name if loaded.printer else None,
        "gpio": loaded.gpio.pin_factory if loaded.gpio else None,
        "attendants": len(loaded.attendants),
    }
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(
        f"{path}: OK — terminal {loaded.terminal.id} at {loaded.terminal.branch} "
        f"({loaded.terminal.mode}), {len(loaded.scanners)} scanner(s), "
        f"display {'yes' if loaded.display else 'no'}, "
        f"printer {summary['printer'] or 'none'}, gpio {summary['gpio'] or 'none'}"
    )


@config.command("hash-pin", help="Make the pin_hash line for an attendant's PIN.")
@click.option(
    "--pin",
    prompt="Attendant PIN",
    hide_input=True,
    confirmation_prompt=True,
    help="The PIN (asked for without echo when not given).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def hash_pin_command(pin: str, as_json: bool) -> None:
    from daemon.config.pins import hash_pin

    hashed = hash_pin(pin)  # a PinError (a ConfigError) is reported at the edge, exit 78
    if as_json:
        click.echo(json.dumps({"ok": True, "pin_hash": hashed}))
    else:
        click.echo(f'pin_hash = "{hashed}"')


def _print_problems(source: str, problems: list[str]) -> None:
    click.echo(f"{source}: the configuration cannot be used:", err=True)
    for problem in problems:
        click.echo(f"  - {problem}", err=True)
