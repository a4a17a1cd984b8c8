"""`posd screen url` and `posd screen wait`: where the lane screen is served, and waiting
until posd serves it (the kiosk browser's unit, `systemd/posd-screen.service`, waits
before it opens the page, so the browser never shows an error page at boot)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import click

from daemon.cli.exits import error_body
from daemon.cli.run_commands import config_option

POLL_S = 0.25


def register(group: click.Group) -> None:
    group.add_command(screen)


@click.group(help="The lane screen: its address, and waiting until posd serves it.")
def screen() -> None:
    pass


def _address(config_path: str) -> tuple[str, bool]:
    from daemon.config.model import load_config

    loaded = load_config(config_path)
    host = loaded.api.host
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{loaded.api.port}/", loaded.screen.enabled


@screen.command("url", help="Print the lane screen's address, from the configuration.")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def url(config_path: str, as_json: bool) -> None:
    address, enabled = _address(config_path)
    if as_json:
        click.echo(json.dumps({"url": address, "enabled": enabled}))
        return
    click.echo(address)
    if not enabled:
        click.echo(f"screen.enabled is false in {config_path}: posd serves no screen", err=True)


@screen.command(
    "wait", help="Wait until posd serves the lane screen; exit 1 if it does not in time."
)
@config_option
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(0, 3600),
    default=60.0,
    show_default=True,
    help="Seconds to wait.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def wait(config_path: str, timeout_s: float, as_json: bool) -> None:
    address, enabled = _address(config_path)
    if not enabled:
        _done(as_json, False, f"screen.enabled is false in {config_path}: there is no screen")
    deadline = time.monotonic() + timeout_s
    last = "nothing answered"
    while True:
        try:
            with urllib.request.urlopen(address + "api/screen", timeout=2) as response:
                if json.load(response)["screen"]["enabled"]:
                    _done(as_json, True, f"the lane screen is served at {address}")
        except (OSError, ValueError, KeyError, TypeError) as error:
            last = str(getattr(error, "reason", error))
        if time.monotonic() >= deadline:
            _done(as_json, False, f"posd did not serve {address} within {timeout_s:g} s ({last})")
        time.sleep(POLL_S)


def _done(as_json: bool, ok: bool, message: str) -> None:
    if as_json:
        payload = {"ok": True, "message": message} if ok else error_body("no_screen", message)
        click.echo(json.dumps(payload | {"message": message}))
    else:
        click.echo(message, err=not ok)
    raise SystemExit(0 if ok else 1)
