"""`posd bench` and `posd demo`."""

from __future__ import annotations

import importlib
import json
from typing import Any

import click

# Benchmark areas, each a module in daemon.bench with run(...) -> dict of figures.
BENCH_AREAS = ("ledger", "scan", "display", "lane", "replication", "hq_dashboard")


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


@click.command(help="Run the walk-through: a store's day on a fresh ledger, explained.")
@click.option("--keep", type=click.Path(file_okay=False), help="Keep the ledger in this folder.")
def demo(keep: str | None) -> None:
    from daemon.lane.demo import run_walkthrough

    raise SystemExit(run_walkthrough(keep))
