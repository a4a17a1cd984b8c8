"""`posd` commands that read the ledger: passports, searches, counts, the audit."""

from __future__ import annotations

import sys

import click

from daemon.cli.common import emit, json_option, opened_ledger
from daemon.cli.exits import NotFoundError, error_body
from daemon.cli.output import Format, chosen_format, emit_rows, format_options
from daemon.ledger.audit import verify_chain, verify_projection
from daemon.ledger.queries import counts, passport, search, short_event_id
from daemon.rules.units import State


def register(group: click.Group) -> None:
    group.add_command(unit)
    group.add_command(search_command)
    group.add_command(counts_command)
    group.add_command(audit)


@click.command(
    help="Show a unit's passport: where it is and everything that happened to it. Each "
    "event shows the terminal that recorded it, its seq there and a short id that "
    "`posd correct` takes. With --csv or --nl: the events, one per row."
)
@click.argument("serial")
@click.option("--product", "product_code", help="Needed when several products share SERIAL.")
@format_options
def unit(serial: str, product_code: str | None) -> None:
    with opened_ledger() as ledger:
        found = ledger.find(serial)
        if product_code:
            found = [u for u in found if u.product.code == product_code]
        if not found:
            raise NotFoundError(f'no unit with serial "{serial}" in the ledger')
        if len(found) > 1:
            choices = ", ".join(u.product.code for u in found)
            raise click.UsageError(
                f'serial "{serial}" belongs to several products ({choices}); add --product'
            )
        card = passport(ledger, found[0])
    u = card.unit
    lines = [
        f"{u.product.name} ({u.product.code})  serial {u.serial}",
        f"  state    {u.state.value} at branch {u.branch}"
        + (f" → {u.dest_branch}" if u.dest_branch else ""),
    ]
    if u.flags:
        lines.append(f"  flags    {', '.join(sorted(f.value for f in u.flags))}")
    if u.invoice:
        lines.append(f"  sold     invoice {u.invoice} to {u.customer} on {u.sold_on}")
    if u.warranty_until:
        lines.append(f"  warranty until {u.warranty_until}")
    lines.append("  history (terminal:seq, id for posd correct)")
    rows = []
    for e in card.events:
        move = f"{e.state_from or '∅'} → {e.state_to}" if e.state_to else ""
        where = f"{e.terminal}:{e.seq}"
        lines.append(
            f"    {where:>10} {short_event_id(e.uuid)} {e.at}  {e.kind:<15} {e.document or '':<24}"
            f" {move:<26} by {e.actor} at {e.branch}"
        )
        rows.append(e.__dict__ | {"short_id": short_event_id(e.uuid)})
    if chosen_format() is Format.JSON:
        whole = card.as_dict()
        whole["events"] = [e | {"short_id": short_event_id(e["uuid"])} for e in whole["events"]]
        emit(True, {"passport": whole}, "")
        return
    emit_rows("events", _EVENT_COLUMNS, rows, "\n".join(lines))


_EVENT_COLUMNS = (
    "terminal",
    "seq",
    "short_id",
    "uuid",
    "at",
    "kind",
    "document",
    "state_from",
    "state_to",
    "actor",
    "branch",
)


@click.command("search", help="Find units by serial, prefix or range, state, product, branch.")
@click.option("--serial")
@click.option("--prefix")
@click.option("--from", "first", help="First serial of a range.")
@click.option("--to", "last", help="Last serial of a range.")
@click.option("--state", type=click.Choice([s.value for s in State]))
@click.option("--product", "product_code")
@click.option("--branch")
@click.option("--limit", type=click.IntRange(1, 100_000), default=100, show_default=True)
@format_options
def search_command(
    serial: str | None,
    prefix: str | None,
    first: str | None,
    last: str | None,
    state: str | None,
    product_code: str | None,
    branch: str | None,
    limit: int,
) -> None:
    with opened_ledger() as ledger:
        units = search(
            ledger,
            serial=serial,
            prefix=prefix,
            first=first,
            last=last,
            state=state,
            product=product_code,
            branch=branch,
            limit=limit + 1,  # one more than shown says whether there are more
        )
    rows = [
        {
            "product": u.product.code,
            "serial": u.serial,
            "state": u.state.value,
            "branch": u.branch,
            "flags": sorted(f.value for f in u.flags),
        }
        for u in units[:limit]
    ]
    text = "\n".join(
        f"{r['product']:<14} {r['serial']:<24} {r['state']:<22} {r['branch']}" for r in rows
    )
    more = f"(the first {limit} units; more match: raise --limit)" if len(units) > limit else None
    emit_rows(
        "units",
        ("product", "serial", "state", "branch", "flags"),
        rows,
        text or "no units match",
        truncated=more,
    )


@click.command("counts", help="Units per serial prefix, state, product or branch.")
@click.option(
    "--by",
    default="prefix,state",
    show_default=True,
    help="Comma-separated: prefix, state, product, branch.",
)
@click.option("--prefix")
@click.option("--state", type=click.Choice([s.value for s in State]), help="Only this state.")
@click.option("--product", "product_code")
@click.option("--branch")
@format_options
def counts_command(
    by: str, prefix: str | None, state: str | None, product_code: str | None, branch: str | None
) -> None:
    groups = tuple(name.strip() for name in by.split(",") if name.strip())
    with opened_ledger() as ledger:
        try:
            rows = counts(ledger, by=groups, prefix=prefix, product=product_code, branch=branch)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--by") from None
    if state is not None:
        if "state" not in groups:
            raise click.UsageError("--state needs state among --by, e.g. --by prefix,state")
        rows = [row for row in rows if row["state"] == state]
    text = "\n".join(
        "  ".join(f"{row[name]!s:<20}" for name in groups) + f"{row['units']:>10}" for row in rows
    )
    emit_rows("counts", (*groups, "units"), rows, text or "no units")


@click.group(help="Prove the ledger has not been edited behind the daemon's back.")
def audit() -> None:
    pass


@audit.command(
    "verify",
    help="Check the triggers, the hash chain and its tail (against the head record beside"
    " the ledger and HQ's acknowledgement); exit 1 naming everything found.",
)
@click.option("--replay", is_flag=True, help="Also rebuild the projection from the log.")
@json_option
def audit_verify(replay: bool, as_json: bool) -> None:
    with opened_ledger(check_head=False) as ledger:
        report = verify_chain(ledger)
        findings = list(report.findings)
        if not findings and replay:
            replayed = verify_projection(ledger)
            findings += [replayed] if replayed else []
    payload = {
        "events": report.events,
        "streams": report.streams,
        "finding": findings[0].__dict__ if findings else None,
        "findings": [f.__dict__ for f in findings],
    }
    if not findings:
        text = f"ledger intact: {report.events} events in {report.streams} chain(s) verified"
        if replay:
            text += "; the projection matches a replay of the log"
        emit(as_json, payload, text)
        return
    if as_json:
        message = "the ledger was changed behind posd's back: " + "; ".join(
            f.message for f in findings
        )
        emit(True, payload | error_body("LedgerTampered", message), "")
    else:
        for finding in findings:
            where = f" (event {finding.event})" if finding.event else ""
            click.echo(f"LEDGER TAMPERED: {finding.message}{where}", err=True)
    sys.exit(1)
