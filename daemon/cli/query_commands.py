"""`posd` commands that read the ledger: passports, searches, counts, the audit."""

from __future__ import annotations

import sys

import click

from daemon.cli.common import emit, json_option, opened_ledger
from daemon.ledger.audit import verify_chain, verify_projection
from daemon.ledger.queries import counts, passport, search


def register(group: click.Group) -> None:
    group.add_command(unit)
    group.add_command(search_command)
    group.add_command(counts_command)
    group.add_command(audit)


@click.command(help="Show a unit's passport: where it is and everything that happened to it.")
@click.argument("serial")
@click.option("--product", "product_code", help="Needed when several products share SERIAL.")
@json_option
def unit(serial: str, product_code: str | None, as_json: bool) -> None:
    with opened_ledger() as ledger:
        found = ledger.find(serial)
        if product_code:
            found = [u for u in found if u.product.code == product_code]
        if not found:
            raise click.ClickException(f'no unit with serial "{serial}" in the ledger')
        if len(found) > 1:
            choices = ", ".join(u.product.code for u in found)
            raise click.ClickException(
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
    lines.append("  history")
    for e in card.events:
        move = f"{e.state_from or '∅'} → {e.state_to}" if e.state_to else ""
        lines.append(
            f"    {e.seq:>6} {e.at}  {e.kind:<15} {e.document or '':<24} {move:<26}"
            f" by {e.actor} at {e.branch}"
        )
    emit(as_json, {"passport": card.as_dict()}, "\n".join(lines))


@click.command("search", help="Find units by serial, prefix or range, state, product, branch.")
@click.option("--serial")
@click.option("--prefix")
@click.option("--from", "first", help="First serial of a range.")
@click.option("--to", "last", help="Last serial of a range.")
@click.option("--status", "state")
@click.option("--product", "product_code")
@click.option("--branch")
@click.option("--limit", type=click.IntRange(1, 100_000), default=100, show_default=True)
@json_option
def search_command(
    serial: str | None,
    prefix: str | None,
    first: str | None,
    last: str | None,
    state: str | None,
    product_code: str | None,
    branch: str | None,
    limit: int,
    as_json: bool,
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
            limit=limit,
        )
    rows = [
        {
            "product": u.product.code,
            "serial": u.serial,
            "state": u.state.value,
            "branch": u.branch,
            "flags": sorted(f.value for f in u.flags),
        }
        for u in units
    ]
    text = "\n".join(
        f"{r['product']:<14} {r['serial']:<24} {r['state']:<22} {r['branch']}" for r in rows
    )
    emit(as_json, {"units": rows}, text or "no units match")


@click.command("counts", help="Units per serial prefix, state, product or branch.")
@click.option(
    "--by",
    default="prefix,state",
    show_default=True,
    help="Comma-separated: prefix, state, product, branch.",
)
@click.option("--prefix")
@click.option("--product", "product_code")
@click.option("--branch")
@json_option
def counts_command(
    by: str, prefix: str | None, product_code: str | None, branch: str | None, as_json: bool
) -> None:
    groups = tuple(name.strip() for name in by.split(",") if name.strip())
    with opened_ledger() as ledger:
        try:
            rows = counts(ledger, by=groups, prefix=prefix, product=product_code, branch=branch)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--by") from None
    text = "\n".join(
        "  ".join(f"{row[name]!s:<20}" for name in groups) + f"{row['units']:>10}" for row in rows
    )
    emit(as_json, {"counts": rows}, text or "no units")


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
        emit(True, payload | {"ok": False}, "")
    else:
        for finding in findings:
            where = f" (event {finding.event})" if finding.event else ""
            click.echo(f"LEDGER TAMPERED: {finding.message}{where}", err=True)
    sys.exit(1)
