"""`posd report`, `posd recall` and `posd count`: serial history turned into decisions."""

from __future__ import annotations

import click

from daemon.cli.common import (
    actor_option,
    emit,
    emit_outcome,
    handles_refusals,
    json_option,
    opened_ledger,
    to_jsonable,
)
from daemon.cli.output import emit_rows, format_options
from daemon.cli.values import ID, NAME_TEXT, NOTE_TEXT
from daemon.ledger.analytics import REPORTS, Table
from daemon.ledger.recalls import RecallSelector, outreach, recall
from daemon.ledger.stocktake import (
    accuracy_by_branch,
    close_count,
    count_report,
    count_scan,
    open_count,
    resolve,
)
from daemon.ledger.udi import udi_records

_REPORT_NAMES = sorted([*REPORTS, "count-accuracy", "udi"])


def register(group: click.Group) -> None:
    group.add_command(report)
    group.add_command(recall_group)
    group.add_command(count)


def show_table(table: Table) -> None:
    """A report in the chosen format (text, --json, --csv, --nl)."""
    widths = [
        max([len(c), *(len(str(r[i])) for r in table.rows)]) for i, c in enumerate(table.columns)
    ]
    lines = [table.title, "  ".join(c.ljust(w) for c, w in zip(table.columns, widths, strict=True))]
    lines += [
        "  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)) for row in table.rows
    ]
    if not table.rows:
        lines.append("(nothing to show)")
    emit_rows(
        "rows", table.columns, table.as_dicts(), "\n".join(lines), extra={"title": table.title}
    )


@click.command(help="Analytics from the event log: " + ", ".join(_REPORT_NAMES) + ".")
@click.argument("name", type=click.Choice(_REPORT_NAMES))
@format_options
def report(name: str) -> None:
    with opened_ledger() as ledger:
        if name == "udi":
            table = udi_records(ledger)
        elif name == "count-accuracy":
            table = accuracy_by_branch(ledger)
        else:
            table = REPORTS[name](ledger)
    show_table(table)


@click.group("recall", help="Recalls: flag matching units, list the customers who hold one.")
def recall_group() -> None:
    pass


@recall_group.command("flag", help="Flag every unit a selection covers as recalled.")
@click.argument("notice", type=ID)
@click.option("--product", "product_code", type=ID)
@click.option("--lot")
@click.option("--from", "first", help="First serial of a range.")
@click.option("--to", "last", help="Last serial of a range.")
@click.option("--prefix")
@click.option("--serial", "serials", multiple=True, help="A serial (repeat for a list).")
@click.option("--reason", required=True, type=NOTE_TEXT)
@actor_option
@json_option
@handles_refusals
def recall_flag(
    notice: str,
    product_code: str | None,
    lot: str | None,
    first: str | None,
    last: str | None,
    prefix: str | None,
    serials: tuple[str, ...],
    reason: str,
    actor: str,
    as_json: bool,
) -> None:
    selector = RecallSelector(product_code, lot, first, last, prefix, serials)
    with opened_ledger() as ledger:
        emit_outcome(as_json, recall(ledger, notice, selector, actor=actor, reason=reason))


@recall_group.command("outreach", help="The customers holding a unit of a recall (CSV or JSON).")
@click.argument("notice")
@format_options
def recall_outreach(notice: str) -> None:
    with opened_ledger() as ledger:
        show_table(outreach(ledger, notice))


@click.group(help="Stock counts: scan the shelves, compare with the ledger, settle differences.")
def count() -> None:
    pass


@count.command("open", help="Open a count of a branch (or of one product there).")
@click.argument("number", type=ID)
@click.option("--branch", type=ID, help="Default: this terminal's branch.")
@click.option("--product", "product_code", type=ID, help="Count only this product.")
@actor_option
@json_option
@handles_refusals
def count_open(
    number: str, branch: str | None, product_code: str | None, actor: str, as_json: bool
) -> None:
    with opened_ledger() as ledger:
        emit_outcome(
            as_json, open_count(ledger, number, actor=actor, branch=branch, product=product_code)
        )


@count.command("scan", help="Record scanned SERIALS of a product in a count.")
@click.argument("number", type=ID)
@click.argument("serials", nargs=-1, required=True)
@click.option("--product", "product_code", required=True, type=ID)
@actor_option
@json_option
@handles_refusals
def count_scan_command(
    number: str, serials: tuple[str, ...], product_code: str, actor: str, as_json: bool
) -> None:
    with opened_ledger() as ledger:
        verdicts = [
            (serial, count_scan(ledger, number, product_code, serial, actor=actor))
            for serial in serials
        ]
    emit(
        as_json,
        {"scans": [{"serial": s, "verdict": o.details["verdict"]} for s, o in verdicts]},
        "\n".join(o.message for _, o in verdicts),
    )


@count.command("report", help="Missing, unexpected, doubly scanned and unknown units.")
@click.argument("number")
@json_option
@handles_refusals
def count_report_command(number: str, as_json: bool) -> None:
    with opened_ledger() as ledger:
        found = count_report(ledger, number)
    lines = [
        f"count {number} at branch {found.branch}: {found.found} of {found.expected}"
        f" found (accuracy {found.accuracy:.1%})"
    ]
    for title, units in (
        ("missing", found.missing),
        ("unexpected", found.unexpected),
        ("scanned twice", found.duplicates),
        ("not in the ledger", found.unknown),
    ):
        if units:
            lines.append(f"{title}:")
            lines += [f"  {u.product} {u.serial}  {u.note}" for u in units]
    emit(as_json, {"report": to_jsonable(found) | {"accuracy": found.accuracy}}, "\n".join(lines))


@count.command("close", help="Close a count and record its accuracy.")
@click.argument("number")
@actor_option
@json_option
@handles_refusals
def count_close(number: str, actor: str, as_json: bool) -> None:
    with opened_ledger() as ledger:
        emit_outcome(as_json, close_count(ledger, number, actor=actor))


@count.command("resolve", help="Settle a difference: missing → lost, found here → found/moved.")
@click.argument("number")
@click.option("--product", "product_code", required=True)
@click.option("--serial", required=True)
@click.option("--manager", type=NAME_TEXT)
@actor_option
@json_option
@handles_refusals
def count_resolve(
    number: str, product_code: str, serial: str, manager: str | None, actor: str, as_json: bool
) -> None:
    with opened_ledger() as ledger:
        emit_outcome(
            as_json, resolve(ledger, number, product_code, serial, actor=actor, manager=manager)
        )
