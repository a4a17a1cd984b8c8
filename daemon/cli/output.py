"""Rows out of `posd`: a text table, `--json`, `--csv` or `--nl`, as sqlite-utils does.

    posd search --prefix LX- --csv > units.csv
    posd counts --by branch,state --nl | jq .units

`--json` prints one object (`{"ok": true, <key>: [rows…], "truncated": false}`), `--nl`
one JSON object per row and line, `--csv` a header and one line per row. A result cut
at a limit says so: `"truncated": true` in JSON, and a line in text (on standard error
with `--csv` and `--nl`, so the rows stay clean to pipe on).

Every CSV cell goes through `csv_cell` and every CSV document through `write_csv`:
the one place to make cells safe for spreadsheets.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Any, TypeVar

import click

from daemon.cli.common import JSON_META, to_jsonable
from daemon.ledger.analytics import Table
from daemon.ledger.recalls import as_csv

F = TypeVar("F", bound=Callable[..., Any])


class Format(StrEnum):
    TEXT = "text"
    JSON = "json"
    CSV = "csv"
    NL = "nl"


def _choose(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if not value:
        return value
    name = param.opts[0].removeprefix("--")
    chosen = ctx.meta.get("posd.format")
    if chosen is not None and chosen != name:
        raise click.UsageError(f"--{chosen} and --{name} are two formats: choose one")
    ctx.meta["posd.format"] = name
    if name == "json":
        ctx.meta[JSON_META] = True
    return value


def format_options(func: F) -> F:
    """Add `--json`, `--csv` and `--nl`; the command receives `output: Format`."""
    for name, help_text in (
        ("nl", "Print one JSON object per row and line."),
        ("csv", "Print CSV, a header line first."),
        ("json", "Print one JSON object (errors too)."),
    ):
        func = click.option(
            f"--{name}",
            f"as_{name}",
            is_flag=True,
            callback=_choose,
            expose_value=False,
            help=help_text,
        )(func)
    return func


def chosen_format() -> Format:
    return Format(click.get_current_context().meta.get("posd.format", Format.TEXT))


def csv_cell(value: Any) -> str:
    """One value as a CSV cell: empty for none, lists joined with `;`."""
    if value is None:
        return ""
    if isinstance(value, list | tuple | set | frozenset):
        return ";".join(csv_cell(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(to_jsonable(value))


def write_csv(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A CSV document: the header, then each row (every cell through `csv_cell`), written
    by the one CSV writer posd has (`as_csv`: a cell a spreadsheet would run as a formula
    is shown as text)."""
    table = Table(
        "",
        tuple(csv_cell(c) for c in columns),
        [tuple(csv_cell(v) for v in row) for row in rows],
    )
    return as_csv(table)


def emit_rows(
    key: str,
    columns: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
    text: str,
    *,
    truncated: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Print `rows` (dicts with at least `columns`) in the chosen format. `text` is the
    text form; `truncated`, when the rows were cut at a limit, says how to see more."""
    output = chosen_format()
    if output is Format.JSON:
        payload = {"ok": True, key: rows, "truncated": truncated is not None, **(extra or {})}
        click.echo(json.dumps(to_jsonable(payload), indent=2, sort_keys=True))
        return
    if output is Format.CSV:
        click.echo(write_csv(columns, ([row.get(c) for c in columns] for row in rows)), nl=False)
    elif output is Format.NL:
        for row in rows:
            click.echo(json.dumps(to_jsonable(row), sort_keys=True))
    else:
        click.echo(text)
    if truncated is not None:
        click.echo(truncated, err=output is not Format.TEXT)
