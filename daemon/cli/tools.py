"""`posd bench` and `posd demo`."""

from __future__ import annotations

import importlib
import json
from typing import Any

import click

# Benchmark areas, each a module in daemon.bench with run(...) -> dict of figures.
BENCH_AREAS = (
    "ledger",
    "scan",
    "display",
    "lane",
    "beside_import",
    "replication",
    "hq_dashboard",
)


def register(group: click.Group) -> None:
    group.add_command(bench)
    group.add_command(demo)


@click.command(help="Measure speed and memory; print one JSON object.")
@click.option(
    "--units",
    type=click.IntRange(1000),
    default=1_000_000,
    show_default=True,
    help="Units in the benchmark ledger.",
)
@click.option(
    "--only", type=click.Choice(BENCH_AREAS), multiple=True, help="Measure only these areas."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the only output format).")
def bench(units: int, only: tuple[str, ...], as_json: bool) -> None:
    figures: dict[str, Any] = {}
    for area in only or BENCH_AREAS:
        module = importlib.import_module(f"daemon.bench.{area}")
        click.echo(f"measuring {area}…", err=True)
        if area in ("ledger", "lane", "hq_dashboard"):
            figures.update(module.run(units=units))
        else:
            figures.update(module.run())
    figures.setdefault("units", units)
    click.echo(json.dumps(figures, indent=2, sort_keys=True))


@click.command(
    help="Run the walk-through: a store's day on a fresh ledger, explained. With --screen: "
    "a simulated self-checkout to walk up to, on its lane screen, until Ctrl-C."
)
@click.option("--keep", type=click.Path(file_okay=False), help="Keep the ledger in this folder.")
@click.option("--screen", is_flag=True, help="Serve the lane screen and open it in a browser.")
@click.option("--cashier", is_flag=True, help="With --screen: the cashier's screen instead.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="With --screen: the loopback port to serve it on (0: any free port).",
)
@click.option("--no-browser", is_flag=True, help="With --screen: only print the address.")
def demo(keep: str | None, screen: bool, cashier: bool, port: int, no_browser: bool) -> None:
    if not screen:
        if cashier or no_browser or port != 8765:
            raise click.UsageError("--cashier, --port and --no-browser go with --screen")
        from daemon.lane.demo import run_walkthrough

        raise SystemExit(run_walkthrough(keep))
    from daemon.lane.demo_screen import run_screen_demo

    raise SystemExit(run_screen_demo(keep, port=port, cashier=cashier, open_browser=not no_browser))
