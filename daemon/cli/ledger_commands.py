"""`posd` commands that change the ledger: each one an operation, each a set of events."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import cast

import click

from daemon.cli.common import (
    DEFAULT_DB,
    actor_option,
    emit,
    emit_outcome,
    handles_refusals,
    is_terminal,
    json_option,
    opened_ledger,
    settings,
)
from daemon.cli.exits import InputMissingError, NotFoundError
from daemon.cli.values import ID, MONEY, NAME_TEXT, NOTE_TEXT, QUANTITY, parse_sale_item
from daemon.ledger import Ledger, SaleLine, UnitRef
from daemon.ledger.importer import import_csv
from daemon.rules.units import Flag, Op, State
from daemon.rules.values import IDENTIFIER, NAME, BadValueError, parse_money
from daemon.rules.warranty import Cause, ClaimLine, LineKind, SupplierTerms

_DISPOSITIONS = [s.value for s in State]


def _split_unit(text: str) -> tuple[str, str]:
    """`PRODUCT/SERIAL`: product codes hold no `/`, so the first one ends the code."""
    product, sep, serial = text.partition("/")
    if not sep or not product or not serial:
        raise click.BadParameter(f"{text!r}: write a unit as PRODUCT/SERIAL, e.g. LAP-X1/SN-1")
    try:
        IDENTIFIER.check(product, "product")
    except BadValueError as problem:
        raise click.BadParameter(str(problem)) from None
    return product, serial


def register(group: click.Group) -> None:
    for command in (init, receive, sell, return_, replace, correct, import_):
        group.add_command(command)
    group.add_command(product)
    group.add_command(transfer)
    group.add_command(repair)
    group.add_command(warranty)
    group.add_command(flag)
    for op, name, help_text in _MOVES:
        group.add_command(_move_command(op, name, help_text))


@click.command(help="Create a new ledger for this terminal (a new epoch).")
@click.option("--terminal", required=True, type=ID, help="This terminal's id, e.g. T-0042.")
@click.option("--branch", required=True, type=ID, help="The branch (store) this terminal is in.")
@json_option
def init(terminal: str, branch: str, as_json: bool) -> None:
    path = settings().db
    path.parent.mkdir(parents=True, exist_ok=True)
    ledger = Ledger.create(path, terminal=terminal, branch=branch)
    text = f"ledger created at {path}: terminal {terminal}, branch {branch}, epoch {ledger.epoch}"
    if os.environ.get("POSD_DB") != str(path) and path != Path(DEFAULT_DB):
        # --db is not remembered: say how the next commands find this ledger.
        text += (
            "\nlater commands find it with --db, or after"
            f" `export POSD_DB={shlex.quote(str(path.resolve()))}`"
        )
    emit(
        as_json,
        {"db": str(path), "terminal": terminal, "branch": branch, "epoch": ledger.epoch},
        text,
    )
    ledger.close()


@click.group(help="Products: serial tracking, serial format rule, warranty period.")
def product() -> None:
    pass


@product.command("add", help="Add a product or change one.")
@click.argument("code", type=ID)
@click.argument("name", type=NAME_TEXT)
@click.option("--gtin", help="GTIN/EAN/UPC of the product.")
@click.option("--warranty-months", type=click.IntRange(0, 600), default=0, show_default=True)
@click.option("--serial-rule", help="Regular expression every serial key must match.")
@click.option("--mask-serial", is_flag=True, help="Print serials masked on receipts.")
@click.option("--price", type=MONEY, default="0", help="Shelf price, e.g. 1299.00.")
@click.option("--not-serialized", is_flag=True, help="A plain item, sold by quantity.")
@actor_option
@json_option
@handles_refusals
def product_add(
    code: str,
    name: str,
    gtin: str | None,
    warranty_months: int,
    serial_rule: str | None,
    mask_serial: bool,
    price: int,
    not_serialized: bool,
    actor: str,
    as_json: bool,
) -> None:
    with opened_ledger() as ledger:
        emit_outcome(
            as_json,
            ledger.define_product(
                code,
                name,
                actor=actor,
                gtin=gtin,
                warranty_months=warranty_months,
                serial_rule=serial_rule,
                mask_serial=mask_serial,
                price_cents=price,
                serial_tracked=not not_serialized,
            ),
        )


@product.command("list", help="List the products.")
@json_option
def product_list(as_json: bool) -> None:
    with opened_ledger() as ledger:
        products = ledger.products()
    lines = [
        f"{p.code:<14} {p.name:<30} {'serial' if p.serial_tracked else 'plain':<6}"
        f" warranty {p.warranty_months}m"
        for p in products
    ]
    emit(as_json, {"products": products}, "\n".join(lines) or "no products")


@click.command(help="Receive SERIALS of one product against a purchase order.")
@click.argument("serials", nargs=-1, required=True)
@click.option("--po", required=True, type=ID, help="Purchase order number.")
@click.option("--supplier", required=True, type=NAME_TEXT)
@click.option("--product", "product_code", required=True, type=ID)
@click.option(
    "--quantity", type=QUANTITY, help="Quantity on the PO line: must equal distinct serials."
)
@click.option("--cost", type=MONEY, default="0", help="Unit cost, e.g. 812.40.")
@click.option("--branch", type=ID, help="Receiving branch (default: this terminal's).")
@actor_option
@json_option
@handles_refusals
def receive(
    serials: tuple[str, ...],
    po: str,
    supplier: str,
    product_code: str,
    quantity: int | None,
    cost: int,
    branch: str | None,
    actor: str,
    as_json: bool,
) -> None:
    with opened_ledger() as ledger:
        emit_outcome(
            as_json,
            ledger.receive(
                po,
                supplier,
                product_code,
                list(serials),
                actor=actor,
                cost_cents=cost,
                quantity=quantity,
                branch=branch,
            ),
        )


@click.command(
    help="Sell units (PRODUCT/SERIAL[@PRICE]) and plain items on one invoice; without a "
    "price, a line sells at the product's shelf price."
)
@click.argument("units", nargs=-1)
@click.option("--invoice", required=True, type=ID)
@click.option("--customer", required=True, type=NAME_TEXT)
@click.option(
    "--item",
    "items",
    multiple=True,
    help="A plain item: PRODUCT[@PRICE][xQTY], e.g. CABLE@4.50x3 or CABLEx3.",
)
@click.option(
    "--manager", type=NAME_TEXT, help="Manager overriding a unit at another branch or in transit."
)
@click.option("--branch", type=ID, help="Selling branch (default: this terminal's).")
@actor_option
@json_option
@handles_refusals
def sell(
    units: tuple[str, ...],
    invoice: str,
    customer: str,
    items: tuple[str, ...],
    manager: str | None,
    branch: str | None,
    actor: str,
    as_json: bool,
) -> None:
    unit_lines: list[tuple[str, str, int | None]] = []
    for text in units:
        # Serials hold no @ (check_serial), so the last @ starts the price.
        unit, at, price_text = text.rpartition("@") if "@" in text else (text, "", "")
        product_code, serial = _split_unit(unit)
        unit_lines.append((product_code, serial, _price(price_text, text) if at else None))
    try:
        item_lines = [parse_sale_item(text) for text in items]
    except BadValueError as problem:
        raise click.BadParameter(str(problem), param_hint="'--item'") from None
    if not unit_lines and not item_lines:
        raise click.UsageError("nothing to sell: give units or --item")
    with opened_ledger() as ledger:
        lines = []
        for code, serial, price in unit_lines:
            lines.append(SaleLine(code, serial, _shelf(ledger, code, price)))
        for item in item_lines:
            if item.whole is not None and ledger.product(item.whole) is not None:
                raise click.BadParameter(
                    f"{item.whole!r} is a product code and also {item.code!r} times "
                    f"{item.quantity}; write {item.whole}x1 or {item.code}@PRICEx{item.quantity}",
                    param_hint="'--item'",
                )
            lines.append(
                SaleLine(
                    item.code, None, _shelf(ledger, item.code, item.price_cents), item.quantity
                )
            )
        emit_outcome(
            as_json,
            ledger.sell(invoice, customer, lines, actor=actor, manager=manager, branch=branch),
        )


def _price(text: str, line: str) -> int:
    try:
        return parse_money(text, "price")
    except BadValueError as problem:
        raise click.BadParameter(f"{line!r}: {problem}") from None


def _shelf(ledger: Ledger, code: str, price: int | None) -> int:
    """The price given, or the product's shelf price (an unknown product: the ledger
    refuses the line)."""
    if price is not None:
        return price
    product = ledger.product(code)
    return product.price_cents if product is not None else 0


@click.command("return", help="Take back a unit against the invoice that sold it.")
@click.option("--invoice", required=True, type=ID)
@click.option("--product", "product_code", required=True, type=ID)
@click.option("--serial", required=True)
@click.option(
    "--condition", required=True, type=NOTE_TEXT, help="As received, e.g. 'boxed, no marks'."
)
@click.option(
    "--disposition",
    type=click.Choice(_DISPOSITIONS),
    default="in_stock",
    show_default=True,
    help="Where the unit goes next.",
)
@click.option("--reason", type=NOTE_TEXT, default="")
@actor_option
@json_option
@handles_refusals
def return_(
    invoice: str,
    product_code: str,
    serial: str,
    condition: str,
    disposition: str,
    reason: str,
    actor: str,
    as_json: bool,
) -> None:
    with opened_ledger() as ledger:
        emit_outcome(
            as_json,
            ledger.return_unit(
                invoice,
                product_code,
                serial,
                actor=actor,
                condition=condition,
                disposition=State(disposition),
                reason=reason,
            ),
        )


@click.group(help="Move units between branches.")
def transfer() -> None:
    pass


@transfer.command("out", help="Ship SERIALS of a product to another branch.")
@click.argument("serials", nargs=-1, required=True)
@click.option("--transfer", "number", required=True, type=ID, help="Transfer document number.")
@click.option("--to", "to_branch", required=True, type=ID)
@click.option("--product", "product_code", required=True, type=ID)
@actor_option
@json_option
@handles_refusals
def transfer_out(
    serials: tuple[str, ...],
    number: str,
    to_branch: str,
    product_code: str,
    actor: str,
    as_json: bool,
) -> None:
    with opened_ledger() as ledger:
        refs = [UnitRef(product_code, s) for s in serials]
        emit_outcome(as_json, ledger.transfer_out(number, to_branch, refs, actor=actor))


@transfer.command("in", help="Receive SERIALS of a transfer at this branch.")
@click.argument("serials", nargs=-1, required=True)
@click.option("--transfer", "number", required=True, type=ID)
@click.option("--product", "product_code", required=True, type=ID)
@click.option("--branch", type=ID, help="Receiving branch (default: this terminal's).")
@actor_option
@json_option
@handles_refusals
def transfer_in(
    serials: tuple[str, ...],
    number: str,
    product_code: str,
    branch: str | None,
    actor: str,
    as_json: bool,
) -> None:
    with opened_ledger() as ledger:
        refs = [UnitRef(product_code, s) for s in serials]
        emit_outcome(as_json, ledger.transfer_in(number, refs, actor=actor, branch=branch))


@click.group(help="Repair tickets with their chain of custody.")
def repair() -> None:
    pass


@repair.command("open", help="Take a unit in for repair.")
@click.argument("ticket", type=ID)
@click.option("--product", "product_code", required=True, type=ID)
@click.option("--serial", required=True)
@click.option("--technician", required=True, type=NAME_TEXT)
@click.option("--condition", required=True, type=NOTE_TEXT, help="Intake condition.")
@click.option(
    "--fault", required=True, type=NOTE_TEXT, help="The fault as the customer describes it."
)
@click.option(
    "--accessory", "accessories", multiple=True, type=NAME_TEXT, help="Accessory handed in."
)
@actor_option
@json_option
@handles_refusals
def repair_open(
    ticket: str,
    product_code: str,
    serial: str,
    technician: str,
    condition: str,
    fault: str,
    accessories: tuple[str, ...],
    actor: str,
    as_json: bool,
) -> None:
    with opened_ledger() as ledger:
        emit_outcome(
            as_json,
            ledger.repair_open(
                ticket,
                UnitRef(product_code, serial),
                actor=actor,
                technician=technician,
                intake_condition=condition,
                fault=fault,
                accessories=accessories,
            ),
        )


@repair.command("step", help="Record a step: diagnosed, awaiting_parts, qc_passed, ...")
@click.argument("ticket", type=ID)
@click.argument("status", type=ID)
@click.option("--technician", type=NAME_TEXT)
@click.option("--diagnosis", type=NOTE_TEXT)
@click.option("--part", "parts", multiple=True, type=NAME_TEXT, help="A part used.")
@click.option("--note", type=NOTE_TEXT, default="")
@actor_option
@json_option
@handles_refusals
def repair_step(
    ticket: str,
    status: str,
    technician: str | None,
    diagnosis: str | None,
    parts: tuple[str, ...],
    note: str,
    actor: str,
    as_json: bool,
) -> None:
    with opened_ledger() as ledger:
        emit_outcome(
            as_json,
            ledger.repair_step(
                ticket,
                status,
                actor=actor,
                technician=technician,
                diagnosis=diagnosis,
                parts=parts,
                note=note,
            ),
        )


@repair.command("close", help="Close a repair: repaired (after QC) or unrepairable.")
@click.argument("ticket", type=ID)
@click.option("--outcome", type=click.Choice(["repaired", "unrepairable"]), required=True)
@click.option("--collected-by", type=NAME_TEXT, help="Who collected the unit.")
@click.option(
    "--disposition", type=click.Choice(_DISPOSITIONS), help="Where an unrepairable unit goes."
)
@actor_option
@json_option
@handles_refusals
def repair_close(
    ticket: str,
    outcome: str,
    collected_by: str | None,
    disposition: str | None,
    actor: str,
    as_json: bool,
) -> None:
    with opened_ledger() as ledger:
        emit_outcome(
            as_json,
            ledger.repair_close(
                ticket,
                actor=actor,
                outcome=outcome,
                collected_by=collected_by,
                disposition=State(disposition) if disposition else None,
            ),
        )


@click.group(help="Warranty claims.")
def warranty() -> None:
    pass


@warranty.command(
    "claim", help="Decide a claim line by line (LINE: description:amount:kind:cause)."
)
@click.argument("claim", type=ID)
@click.option("--product", "product_code", required=True, type=ID)
@click.option("--serial", required=True)
@click.option(
    "--line",
    "lines",
    multiple=True,
    required=True,
    help="e.g. 'mainboard:180.00:part:defect' or 'screen:90:part:damage'.",
)
@click.option(
    "--parts-extra-months",
    type=click.IntRange(0, 600),
    default=0,
    help="Supplier covers parts longer.",
)
@click.option("--damage-notes", type=NOTE_TEXT, default="")
@actor_option
@json_option
@handles_refusals
def warranty_claim(
    claim: str,
    product_code: str,
    serial: str,
    lines: tuple[str, ...],
    parts_extra_months: int,
    damage_notes: str,
    actor: str,
    as_json: bool,
) -> None:
    parsed = [_claim_line(text) for text in lines]
    with opened_ledger() as ledger:
        emit_outcome(
            as_json,
            ledger.warranty_claim(
                claim,
                UnitRef(product_code, serial),
                parsed,
                actor=actor,
                terms=SupplierTerms(parts_extra_months=parts_extra_months),
                damage_notes=damage_notes,
            ),
        )


def _claim_line(text: str) -> ClaimLine:
    """`description:amount[:kind[:cause]]`, e.g. `mainboard:180.00:part:defect`."""
    fields = text.split(":")
    if not 2 <= len(fields) <= 4:
        raise click.BadParameter(
            f"{text!r}: write description:amount[:kind[:cause]]", param_hint="'--line'"
        )
    kinds = [k.value for k in LineKind]
    causes = [c.value for c in Cause]
    kind = fields[2] if len(fields) > 2 and fields[2] else LineKind.PART.value
    cause = fields[3] if len(fields) > 3 and fields[3] else Cause.DEFECT.value
    try:
        NAME.check(fields[0], "description")
        amount = parse_money(fields[1], "amount")
    except BadValueError as problem:
        raise click.BadParameter(f"{text!r}: {problem}", param_hint="'--line'") from None
    if kind not in kinds or cause not in causes:
        raise click.BadParameter(
            f"{text!r}: kind is one of {', '.join(kinds)} and cause one of {', '.join(causes)}",
            param_hint="'--line'",
        )
    return ClaimLine(fields[0], amount, LineKind(kind), Cause(cause))


@click.command(help="Replace a customer's unit OLD with NEW (each PRODUCT/SERIAL).")
@click.argument("document", type=ID)
@click.argument("old")
@click.argument("new")
@click.option(
    "--old-disposition",
    type=click.Choice(_DISPOSITIONS),
    required=True,
    help="Where the old unit goes: in_repair, returned_to_supplier, written_off, ...",
)
@click.option("--reason", type=NOTE_TEXT, default="")
@click.option("--manager", type=NAME_TEXT, help="Manager overriding a new unit at another branch.")
@actor_option
@json_option
@handles_refusals
def replace(
    document: str,
    old: str,
    new: str,
    old_disposition: str,
    reason: str,
    manager: str | None,
    actor: str,
    as_json: bool,
) -> None:
    with opened_ledger() as ledger:
        emit_outcome(
            as_json,
            ledger.replace(
                document,
                UnitRef(*_split_unit(old)),
                UnitRef(*_split_unit(new)),
                actor=actor,
                old_disposition=State(old_disposition),
                reason=reason,
                manager=manager,
            ),
        )


_MOVES = (
    (Op.QUARANTINE, "quarantine", "Quarantine units (in stock)."),
    (Op.RELEASE, "release", "Release units from quarantine."),
    (Op.RETURN_TO_SUPPLIER, "return-to-supplier", "Send units back to the supplier."),
    (Op.WRITE_OFF, "write-off", "Write units off (needs --manager)."),
    (Op.MARK_LOST, "lost", "Mark units lost."),
    (Op.MARK_FOUND, "found", "Mark lost units found."),
)


def _move_command(op: Op, name: str, help_text: str) -> click.Command:
    @click.command(name, help=help_text)
    @click.argument("serials", nargs=-1, required=True)
    @click.option("--product", "product_code", required=True, type=ID)
    @click.option("--reason", required=True, type=NOTE_TEXT)
    @click.option("--manager", type=NAME_TEXT, help="Approving manager.")
    @click.option("--document", type=ID, help="Document number (generated when absent).")
    @actor_option
    @json_option
    @handles_refusals
    def move(
        serials: tuple[str, ...],
        product_code: str,
        reason: str,
        manager: str | None,
        document: str | None,
        actor: str,
        as_json: bool,
    ) -> None:
        with opened_ledger() as ledger:
            refs = [UnitRef(product_code, s) for s in serials]
            emit_outcome(
                as_json,
                ledger.move(
                    op, refs, actor=actor, reason=reason, manager=manager, document=document
                ),
            )

    return move


@click.command(help="Flag units stolen, recalled, conflict or on_hold (or --clear it).")
@click.argument("flag_name", metavar="FLAG", type=click.Choice([f.value for f in Flag]))
@click.argument("serials", nargs=-1, required=True)
@click.option("--product", "product_code", required=True, type=ID)
@click.option("--reason", required=True, type=NOTE_TEXT)
@click.option("--clear", is_flag=True, help="Take the flag off.")
@actor_option
@json_option
@handles_refusals
def flag(
    flag_name: str,
    serials: tuple[str, ...],
    product_code: str,
    reason: str,
    clear: bool,
    actor: str,
    as_json: bool,
) -> None:
    with opened_ledger() as ledger:
        refs = [UnitRef(product_code, s) for s in serials]
        emit_outcome(
            as_json,
            ledger.set_flag(refs, Flag(flag_name), actor=actor, reason=reason, on=not clear),
        )


@click.command(
    help="Correct EVENT (undo its change) with a new event naming it. EVENT is the event's "
    "id, or the 8 hex digits `posd unit` shows beside it."
)
@click.argument("event")
@click.option("--manager", required=True, type=NAME_TEXT)
@click.option("--reason", required=True, type=NOTE_TEXT)
@actor_option
@json_option
@handles_refusals
def correct(event: str, manager: str, reason: str, actor: str, as_json: bool) -> None:
    with opened_ledger() as ledger:
        try:
            event_id = ledger.expand_event_id(event)
        except LookupError as problem:
            raise NotFoundError(str(problem)) from None
        emit_outcome(as_json, ledger.correct(event_id, actor=actor, manager=manager, reason=reason))


@click.command(
    "import",
    help="Import serials from CSV: nothing is written unless every row is good (refused: the"
    " first problems and how many there are; --json lists them all). Written in short"
    " transactions, so a lane on the same ledger keeps selling; if it is interrupted,"
    " importing the same file again finishes it (rows already imported are skipped).",
)
@click.argument("csv_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--skip-existing",
    is_flag=True,
    help="Skip rows of units already received on the row's PO (importing a file again).",
)
@actor_option
@json_option
@handles_refusals
def import_(csv_file: Path, skip_existing: bool, actor: str, as_json: bool) -> None:
    if not csv_file.is_file():
        raise InputMissingError(f"no file {str(csv_file)!r} to import")
    with opened_ledger() as ledger, csv_file.open(newline="", encoding="utf-8-sig") as stream:
        try:
            total = sum(1 for _ in stream) - 1
        except UnicodeDecodeError as error:
            raise click.BadParameter(
                f"{csv_file.name} is not UTF-8 text (byte {error.start + 1}); save it as CSV UTF-8",
                param_hint="CSV_FILE",
            ) from None
        stream.seek(0)
        if is_terminal() and not as_json:
            with click.progressbar(length=total, label="importing", file=sys.stderr) as bar:
                advance = cast(Callable[[int], None], bar.update)
                report = import_csv(
                    ledger, stream, actor=actor, progress=advance, skip_existing=skip_existing
                )
        else:
            report = import_csv(ledger, stream, actor=actor, skip_existing=skip_existing)
    skipped = f"; {report.skipped} already received, skipped" if report.skipped else ""
    already = f"; {report.already} rows were imported already" if report.already else ""
    emit(
        as_json,
        {
            "rows": report.rows,
            "units": report.units,
            "documents": report.documents,
            "skipped": report.skipped,
            "already": report.already,
        },
        f"imported {report.units} units from {csv_file.name}"
        f" ({len(report.documents)} purchase orders){already}{skipped}",
    )
