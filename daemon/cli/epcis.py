"""`posd export epcis`, `posd hq export epcis`, `posd import epcis` and `posd expected`:
the ledger in GS1's EPCIS 2.0, and a supplier's advance ship notice into it.

posd export epcis --out units.jsonld --product LAP-X1 --since 2026-11-01
posd --db hq.db hq export epcis --gln NORTH=4012345000009 > chain.jsonld
posd import epcis asn.jsonld --po PO-7     # the units PO-7 brings, with lot and expiry
posd expected receive --po PO-7 LX-1 LX-2  # one serial per unit, nothing typed
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import click

from daemon.cli.common import (
    actor_option,
    emit,
    emit_outcome,
    handles_refusals,
    json_option,
    opened_ledger,
)
from daemon.cli.values import ID, NAME_TEXT
from daemon.epcis.asn import MAX_NOTICE_BYTES, read_notice
from daemon.epcis.identifiers import BadGlnError, Places, check_gln
from daemon.epcis.writer import DocumentWriter
from daemon.ledger import Ledger
from daemon.ledger.history import Selection, history, product_gtins
from daemon.ledger.reader import ReadStore
from daemon.ledger.store import iso


def register(group: click.Group) -> None:
    """Add `export`, `import epcis` (the CSV import stays `posd import FILE`),
    `expected`, and `hq export`."""
    group.add_command(export_group)
    group.add_command(expected_group)
    imports = ImportGroup("import", help="Import serials: from CSV (FILE), or EPCIS (epcis FILE).")
    csv_import = group.commands.get("import")
    if csv_import is not None:
        imports.add_command(csv_import, "csv")
    imports.add_command(import_epcis)
    group.add_command(imports)
    hq = group.commands.get("hq")
    if isinstance(hq, click.Group):
        hq_export = click.Group("export", help="Export HQ's ledger (the whole chain).")
        hq_export.add_command(hq_export_epcis)
        hq.add_command(hq_export)


class ImportGroup(click.Group):
    """`posd import FILE` imports CSV as it always has; `posd import epcis FILE` an
    EPCIS notice."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["csv", *args]
        return super().parse_args(ctx, args)


# -- export ---------------------------------------------------------------------------


def _moment(text: str, what: str) -> str:
    """An ISO date or time as the events write it (UTC, milliseconds, Z)."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{text[:40]!r} is not a date or time like 2026-11-23 or 2026-11-23T09:00:00Z",
            param_hint=what,
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return iso(moment)


def _places(glns: tuple[str, ...], own: tuple[str, str] | None = None) -> Places:
    mapping: dict[str, str] = {}
    if own is not None:
        mapping[own[0]] = own[1]
    for pair in glns:
        branch, equals, gln = pair.partition("=")
        try:
            if not (equals and branch):
                raise BadGlnError(f"{pair[:40]!r} is not BRANCH=GLN")
            mapping[branch] = check_gln(gln)
        except BadGlnError as error:
            raise click.BadParameter(str(error), param_hint="--gln") from None
    return Places(mapping)


def _config_gln(path: Path | None) -> tuple[str, str] | None:
    if path is None:
        return None
    from daemon.config.model import ConfigFileError, load_config

    try:
        terminal = load_config(path).terminal
    except ConfigFileError as error:
        raise click.BadParameter(str(error), param_hint="--config") from None
    return (terminal.branch, terminal.gln) if terminal.gln else None


def selection_options(func: Any) -> Any:
    options = [
        click.option(
            "--out",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Write here (default: standard output); the file appears only when complete.",
        ),
        click.option("--product", type=ID, help="Only this product's units."),
        click.option("--serial", help="Only the unit with this serial (with --product: of it)."),
        click.option("--branch", type=ID, help="Only events at this branch."),
        click.option("--terminal", type=ID, help="Only events of this terminal."),
        click.option("--from-seq", type=click.IntRange(1), help="From this sequence number."),
        click.option("--to-seq", type=click.IntRange(1), help="Up to this sequence number."),
        click.option("--since", help="From this date or time (UTC unless it says)."),
        click.option("--until", help="Before this date or time."),
        click.option(
            "--gln",
            "glns",
            multiple=True,
            metavar="BRANCH=GLN",
            help="A branch's GS1 GLN (repeat for each branch that has one).",
        ),
        json_option,
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _selection(options: dict[str, Any]) -> Selection:
    return Selection(
        product=options["product"],
        serial=options["serial"],
        branch=options["branch"],
        terminal=options["terminal"],
        from_seq=options["from_seq"],
        to_seq=options["to_seq"],
        since=_moment(options["since"], "--since") if options["since"] else None,
        until=_moment(options["until"], "--until") if options["until"] else None,
    )


@contextmanager
def _output(path: Path | None) -> Iterator[TextIO]:
    if path is None:
        yield sys.stdout
        return
    if not str(path) or path.name in ("", ".", "..") or path.is_dir():
        raise click.BadParameter(f"{str(path)!r} is a folder: name a file", param_hint="--out")
    folder = path.resolve().parent
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
    except OSError as error:
        raise click.FileError(str(path), hint=error.strerror or str(error)) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _export(store: ReadStore, places: Places, options: dict[str, Any]) -> None:
    selection = _selection(options)
    out_path: Path | None = options["out"]
    if options["as_json"] and out_path is None:
        raise click.UsageError("--json prints a summary: give the document a file (--out)")
    gtins = product_gtins(store)
    with _output(out_path) as out:
        writer = DocumentWriter(out, places, gtins.get, created=iso(datetime.now(UTC)))
        for event in history(store, selection):
            writer.add(event)
        writer.close()
    message = (
        f"{writer.written} EPCIS event(s) written; {writer.skipped} ledger event(s) moved no unit"
    )
    if out_path is None:
        click.echo(message, err=True)
        return
    emit(
        options["as_json"],
        {"written": writer.written, "skipped": writer.skipped, "file": str(out_path)},
        f"{message} ({out_path})",
    )


@click.group("export", help="Export the ledger in an industry format.")
def export_group() -> None:
    pass


@export_group.command(
    "epcis",
    help="Write this ledger's unit events as one EPCIS 2.0 JSON-LD document of ObjectEvents"
    " (bizStep and disposition from GS1's CBV, eventID the GS1 event hash). Streams: any"
    " size of ledger in constant memory.",
)
@selection_options
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The terminal's posd.toml: its [terminal] gln names this branch.",
)
def export_epcis(config_path: Path | None, glns: tuple[str, ...], **options: Any) -> None:
    places = _places(glns, _config_gln(config_path))
    with opened_ledger() as ledger:
        _export(ledger, places, options)


@click.command(
    "epcis",
    help="Write HQ's events, every branch's, as one EPCIS 2.0 JSON-LD document (see"
    " `posd export epcis`); reads HQ's database without writing to it.",
)
@selection_options
def hq_export_epcis(glns: tuple[str, ...], **options: Any) -> None:
    from daemon.hq.web.db import HqSource, open_reader

    settings = click.get_current_context().meta["posd.hq"]
    if settings.db is not None and not Path(settings.db).exists():
        raise click.ClickException(f"no HQ database at {settings.db}")
    places = _places(glns)
    source = HqSource(db=Path(settings.db)) if settings.pg is None else HqSource(pg=settings.pg)
    try:
        reader = open_reader(source)
    except Exception as error:  # the driver's own errors: a message, not a traceback
        raise click.ClickException(f"cannot open HQ's database: {error}") from None
    try:
        _export(reader, places, options)
    finally:
        reader.close()


# -- import ---------------------------------------------------------------------------


def product_of_gtin(ledger: Ledger, gtin: str) -> str | None:
    """The product with this GTIN-14, however many digits it was given with."""
    for candidate in (gtin, gtin[1:], gtin[2:], gtin[6:]):
        if len(candidate) in (8, 12, 13, 14) and gtin.startswith("0" * (14 - len(candidate))):
            product = ledger.product_by_gtin(candidate)
            if product is not None:
                return product.code
    return None


@click.command(
    "epcis",
    help="Register the units of a supplier's advance ship notice (EPCIS 2.0 JSON-LD:"
    " ObjectEvents with bizStep shipping or receiving, lot and expiry from ILMD) against"
    " a purchase order, so each is received with one scan. All units or none.",
)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--po", type=ID, help="The purchase order (default: the one each event names).")
@click.option("--supplier", type=NAME_TEXT, help="The supplier, where the notice names none.")
@json_option
@handles_refusals
def import_epcis(file: Path, po: str | None, supplier: str | None, as_json: bool) -> None:
    size = file.stat().st_size
    if size > MAX_NOTICE_BYTES:
        raise click.BadParameter(
            f"{file.name} is {size:,} bytes; a notice is at most {MAX_NOTICE_BYTES:,}",
            param_hint="FILE",
        )
    data = file.read_bytes()
    with opened_ledger() as ledger:
        notice = read_notice(
            data, po=po, supplier=supplier, product_of_gtin=lambda g: product_of_gtin(ledger, g)
        )
        outcome = ledger.expect_units(notice.units)
    unused = dict(notice.unused)
    outcome.details["unused"] = unused
    if unused:
        outcome.message += "; not used: " + ", ".join(f"{n} {k}" for k, n in unused.items())
    emit_outcome(as_json, outcome)


@click.group("expected", help="Units purchase orders will bring (from `posd import epcis`).")
def expected_group() -> None:
    pass


@expected_group.command("list", help="Expected units not received yet.")
@click.option("--po", type=ID, help="Of this purchase order only.")
@json_option
def expected_list(po: str | None, as_json: bool) -> None:
    with opened_ledger() as ledger:
        rows = ledger.expected(po)
    lines = [
        f"{r['po']:<12} {r['product']:<12} {r['serial']:<20} lot {r['lot'] or '-':<10}"
        f" expiry {r['expiry'] or '-'}"
        for r in rows
    ]
    emit(as_json, {"expected": rows}, "\n".join(lines) or "nothing is expected")


@expected_group.command(
    "receive", help="Receive units of PO by their SERIALS alone: the rest is in the notice."
)
@click.argument("serials", nargs=-1, required=True)
@click.option("--po", required=True, type=ID, help="Purchase order the units arrive on.")
@click.option("--branch", type=ID, help="Receiving branch (default: this terminal's).")
@actor_option
@json_option
@handles_refusals
def expected_receive(
    serials: tuple[str, ...], po: str, branch: str | None, actor: str, as_json: bool
) -> None:
    with opened_ledger() as ledger:
        emit_outcome(
            as_json, ledger.receive_expected(po, list(serials), actor=actor, branch=branch)
        )
