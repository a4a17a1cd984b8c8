"""Commands other installed packages add to `posd`, such as `posd simulate`.

A package names its command in the `posd.commands` entry point group (pyproject.toml:
`[project.entry-points."posd.commands"] simulate = "simulators.command:simulate"`).
`posd` looks there only for a name it does not know itself, or to list every command
in `--help`, so the daemon never imports the simulators, stands without them, and
`posd run` does not pay for the look-up.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

import click

GROUP = "posd.commands"


def _points() -> dict[str, EntryPoint]:
    return {point.name: point for point in entry_points(group=GROUP)}


def added_names() -> list[str]:
    """The names of the commands installed packages add."""
    return sorted(_points())


def added_command(name: str) -> click.Command | None:
    """The command an installed package adds under `name`, or None."""
    point = _points().get(name)
    if point is None:
        return None
    try:
        command = point.load()
    except Exception as error:  # a broken add-on must not take `posd` down
        return _unloadable(name, f"{point.value}: {type(error).__name__}: {error}")
    if not isinstance(command, click.Command):
        return _unloadable(name, f"{point.value} is not a click command")
    return command


def _unloadable(name: str, why: str) -> click.Command:
    def refuse() -> None:
        raise click.ClickException(f"`posd {name}` is installed but cannot be loaded ({why})")

    return click.Command(name, callback=refuse, help=f"(cannot be loaded: {why})")
