"""Money, quantities, ids and text: each kind checked once, and refused wherever it comes in.

The same bad value is tried through the library (`daemon.rules.values`), the ledger's
own operations, the command line and a CSV import: each says what is wrong with it, and
nothing of it is stored.
"""

from __future__ import annotations

import io
import json
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st

from daemon.cli import build
from daemon.cli.values import parse_sale_item
from daemon.ledger import Ledger, Refusal, SaleLine
from daemon.ledger.importer import import_csv
from daemon.rules.values import (
    IDENTIFIER,
    MAX_CENTS,
    MAX_QUANTITY,
    NAME,
    NOTE,
    BadValueError,
    parse_money,
    parse_quantity,
)
from tests.ledger_fixtures import make_ledger

BAD_AMOUNTS = [
    "-5",
    "-0.01",
    "NaN",
    "nan",
    "Infinity",
    "-inf",
    "1e30",
    "1e3",
    "12.345",
    "0.001",
    "12.",
    ".5",
    "1,50",
    "+3",
    "",
    " ",
    "١٢",  # Arabic-Indic digits: Decimal would take them
    "100000000.01",  # one cent over the most
    "9" * 40,
]


@pytest.mark.parametrize(
    ("text", "cents"),
    [
        ("0", 0),
        ("12", 1200),
        ("12.5", 1250),
        ("12.50", 1250),
        (" 7.05 ", 705),
        ("100000000", MAX_CENTS),
    ],
)
def test_amounts_are_read_exactly_in_cents(text: str, cents: int) -> None:
    assert parse_money(text, "price") == cents


@pytest.mark.parametrize("text", BAD_AMOUNTS)
def test_an_amount_that_is_not_plain_money_is_refused_quoting_it(text: str) -> None:
    with pytest.raises(BadValueError) as refused:
        parse_money(text, "price")
    message = str(refused.value)
    assert message.startswith("price ")
    assert json.dumps(text, ensure_ascii=False)[:20] in message or "outside" in message


@given(st.decimals(min_value=0, max_value=MAX_CENTS // 100, places=2))
def test_every_two_decimal_amount_in_range_reads_back_to_its_cents(amount: Decimal) -> None:
    assert parse_money(f"{amount:f}") == int(amount * 100)


@pytest.mark.parametrize("text", ["0", "-1", "1.5", "x", "", str(MAX_QUANTITY + 1), "1e3"])
def test_a_quantity_is_a_whole_number_from_one_up_to_a_bound(text: str) -> None:
    with pytest.raises(BadValueError, match="quantity"):
        parse_quantity(text)
    assert parse_quantity("3") == 3


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("", "empty"),
        ("BR/17", "'/'"),
        ("T+1", "'+'"),
        ("T#1", "'#'"),
        ("INV-1\nINV-2", "control character (U+000A)"),
        ("B 1", "a space"),
        ("-B1", "must start with a letter or digit"),
        ("..", "must start with a letter or digit"),
        ("$SYS", "must start with a letter or digit"),
        ("B" * 65, "too long"),
    ],
)
def test_ids_are_safe_as_mqtt_topic_levels_and_file_names(value: str, says: str) -> None:
    problem = IDENTIFIER.problem(value, "branch")
    assert problem is not None and problem.startswith("branch ") and says in problem


@pytest.mark.parametrize("value", ["T-0042", "BR_17", "INV.2026:7", "Zürich1", "42"])
def test_ordinary_ids_pass(value: str) -> None:
    assert IDENTIFIER.check(value) == value


def test_a_100000_character_name_is_refused_with_a_short_message() -> None:
    problem = NAME.problem("A" * 100_000, "customer")
    assert problem is not None
    assert "too long" in problem and "128" in problem and "100000 characters" in problem
    assert len(problem) < 200


def test_names_are_one_line_and_notes_may_have_several() -> None:
    assert NAME.problem("Ann\nSmith", "customer") is not None
    assert NAME.problem("Ann \u202eevil", "customer") is not None  # right-to-left override
    assert NOTE.problem("scratched lid\nno charger", "condition") is None
    assert NOTE.problem("bell\x07", "condition") is not None
    assert NOTE.problem("", "reason") is None


@given(st.text(max_size=80))
def test_an_id_that_passes_never_holds_a_topic_wildcard_a_separator_or_a_line_break(
    value: str,
) -> None:
    if IDENTIFIER.problem(value) is None:
        assert value and not set(value) & set("/+#\n\r\x00 ")
        assert value[0].isalnum() and len(value) <= 64


# ---------------------------------------------------------------- the ledger's own checks


@pytest.fixture
def ledger() -> Ledger:
    return make_ledger()


def count_events(ledger: Ledger) -> int:
    return int(ledger.db.execute("SELECT count(*) FROM events").fetchone()[0])


@pytest.mark.parametrize(
    "call",
    [
        lambda led: led.define_product("A/B", "Box", actor="ann"),
        lambda led: led.define_product("BOX", "B" * 100_000, actor="ann"),
        lambda led: led.define_product("BOX", "Box", actor="ann", price_cents=-100),
        lambda led: led.define_product("BOX", "Box", actor="ann", price_cents=10**30),
        lambda led: led.define_product("BOX", "Box", actor="ann", warranty_months=-1),
        lambda led: led.receive("PO\n1", "Acme", "LAP", ["SN-1"], actor="ann"),
        lambda led: led.receive("PO-1", "Acme", "LAP", ["SN-1"], actor="ann", cost_cents=-1),
        lambda led: led.receive("PO-1", "Acme", "LAP", ["SN-1"], actor="ann", quantity=0),
        lambda led: led.receive("PO-1", "Acme", "LAP", ["SN-1"], actor="ann", branch="B#1"),
        lambda led: led.receive("PO-1", "Acme", "LAP", ["SN-1"], actor="ann\nroot"),
        lambda led: led.sell("INV/1", "Bo", [SaleLine("CABLE")], actor="ann"),
        lambda led: led.sell("INV-1", "Bo", [SaleLine("CABLE", None, -500)], actor="ann"),
        lambda led: led.sell("INV-1", "Bo", [SaleLine("CABLE", None, 100, 0)], actor="ann"),
        lambda led: led.sell("INV-1", "Bo", [SaleLine("CABLE", None, 100, -3)], actor="ann"),
        lambda led: led.sell("INV-1", "Bo", [SaleLine("CABLE", None, 100, 10**9)], actor="ann"),
        lambda led: led.sell("INV-1", "B" * 100_000, [SaleLine("CABLE")], actor="ann"),
    ],
)
def test_the_ledger_refuses_bad_values_whoever_calls_it(ledger: Ledger, call: object) -> None:
    before = count_events(ledger)
    with pytest.raises(Refusal) as refused:
        call(ledger)  # type: ignore[operator]
    assert refused.value.code == "bad_value"
    assert count_events(ledger) == before


def test_a_serial_tracked_product_cannot_be_sold_as_a_plain_item(ledger: Ledger) -> None:
    ledger.receive("PO-1", "Acme", "LAP", ["LX-1"], actor="ann")
    before = count_events(ledger)
    with pytest.raises(Refusal) as refused:
        ledger.sell("INV-1", "Bo", [SaleLine("LAP", None, 129900)], actor="ann")
    assert refused.value.code == "serial_required"
    assert "LAP/SERIAL" in str(refused.value)
    assert count_events(ledger) == before
    assert ledger.unit("LAP", "LX-1") is not None
    assert ledger.unit("LAP", "LX-1").state.value == "in_stock"  # type: ignore[union-attr]


# ---------------------------------------------------------------- the command line


class Posd:
    def __init__(self, db: Path) -> None:
        self.db = db

    def __call__(self, *args: str) -> Result:
        return CliRunner().invoke(
            build(), ["--db", str(self.db), *args], env={"POSD_ACTOR": "clerk"}
        )


@pytest.fixture
def posd(tmp_path: Path) -> Posd:
    runner = Posd(tmp_path / "ledger.db")
    assert runner("init", "--terminal", "T1", "--branch", "B1").exit_code == 0
    assert runner("product", "add", "LAP", "Laptop", "--price", "1299").exit_code == 0
    assert (
        runner("product", "add", "CABLE", "Cable", "--not-serialized", "--price", "4.5").exit_code
        == 0
    )
    assert runner("product", "add", "BOX", "Box", "--not-serialized", "--price", "2").exit_code == 0
    assert (
        runner(
            "product", "add", "BOXx2", "Box of two", "--not-serialized", "--price", "3"
        ).exit_code
        == 0
    )
    return runner


def products(posd: Posd) -> dict[str, int]:
    listed = json.loads(posd("product", "list", "--json").stdout)["products"]
    return {p["code"]: p["price_cents"] for p in listed}


@pytest.mark.parametrize("price", ["-5", "NaN", "Infinity", "1e30", "12.345"])
def test_a_bad_price_on_the_command_line_names_the_option_and_stores_nothing(
    posd: Posd, price: str
) -> None:
    result = posd("product", "add", "PEN", "Pen", "--price", price)
    assert result.exit_code == 2
    assert "--price" in result.output and "not an amount like 12.50" in result.output
    assert "Traceback" not in result.output
    assert "PEN" not in products(posd)


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["init", "--terminal", "T2", "--branch", "B/2"], "--branch"),
        (["product", "add", "A+B", "Pen"], "CODE"),
        (["product", "add", "PEN", "P" * 100_000], "NAME"),
        (["receive", "S1", "--po", "PO 1", "--supplier", "A", "--product", "LAP"], "--po"),
        (
            [
                "receive",
                "S1",
                "--po",
                "P1",
                "--supplier",
                "A",
                "--product",
                "LAP",
                "--quantity",
                "0",
            ],
            "--quantity",
        ),
        (
            ["receive", "S1", "--po", "P1", "--supplier", "A", "--product", "LAP", "--cost", "-1"],
            "--cost",
        ),
        (["sell", "--invoice", "I\n1", "--customer", "Bo", "--item", "CABLE"], "--invoice"),
        (["sell", "--invoice", "I1", "--customer", "Bo", "--item", "CABLEx0"], "--item"),
        (["sell", "--invoice", "I1", "--customer", "Bo", "--item", "CABLE@-1"], "--item"),
        (["sell", "--invoice", "I1", "--customer", "Bo", "--item", "CABLE@1x"], "--item"),
    ],
)
def test_bad_values_on_the_command_line_are_usage_errors(
    posd: Posd, args: list[str], option: str
) -> None:
    result = posd(*args)
    assert result.exit_code == 2, result.output
    assert option in result.output
    assert "Traceback" not in result.output


def sold_items(posd: Posd, invoice: str) -> list[tuple[str, int, int]]:
    from daemon.ledger.events import EventBody

    ledger = Ledger.open(posd.db)
    try:
        rows = ledger.db.execute(
            "SELECT e.body FROM events e JOIN documents d ON d.id = e.doc_id"
            " WHERE d.number = ? AND e.kind = 'sell_item' ORDER BY e.id",
            [invoice],
        ).fetchall()
    finally:
        ledger.close()
    found = []
    for (body,) in rows:
        data = EventBody.parse(body).data
        found.append((str(data["item"]), int(data["quantity"]), int(data["price_cents"])))
    return found


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("CABLE@", None),
        ("CABLE", ("CABLE", 1, 450)),  # the shelf price, not 0.00
        ("CABLEx3", ("CABLE", 3, 450)),
        ("CABLE@4x3", ("CABLE", 3, 400)),
        ("BOXx2@1.25", ("BOXx2", 1, 125)),  # after an @ comes the price, never the code
        ("BOXx2x1", ("BOXx2", 1, 300)),  # a code with an x, its quantity written out
        ("BOXx2@3x4", ("BOXx2", 4, 300)),
    ],
)
def test_sale_items_read_with_the_quantity_split_off_the_right(
    posd: Posd, item: str, expected: tuple[str, int, int] | None
) -> None:
    result = posd("sell", "--invoice", "INV-1", "--customer", "Bo", "--item", item)
    if expected is None:
        assert result.exit_code != 0
        assert sold_items(posd, "INV-1") == []
    else:
        assert result.exit_code == 0, result.output
        assert sold_items(posd, "INV-1") == [expected]


def test_an_item_that_reads_as_two_products_is_refused_not_guessed(posd: Posd) -> None:
    # "BOXx2" is a product, and also "BOX" times two.
    result = posd("sell", "--invoice", "INV-1", "--customer", "Bo", "--item", "BOXx2")
    assert result.exit_code == 2
    assert "BOXx2x1" in result.output and "BOX@PRICEx2" in result.output
    assert sold_items(posd, "INV-1") == []


@given(
    code=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9x._:-]{0,10}", fullmatch=True),
    price=st.one_of(st.none(), st.integers(0, 10**6)),
    quantity=st.one_of(st.none(), st.integers(1, 999)),
)
def test_a_written_item_reads_back_as_what_was_meant_or_says_it_reads_two_ways(
    code: str, price: int | None, quantity: int | None
) -> None:
    text = code
    if price is not None:
        text += f"@{price // 100}.{price % 100:02d}"
    if quantity is not None:
        text += f"x{quantity}"
    item = parse_sale_item(text)
    read = (item.code, item.price_cents, item.quantity)
    if read != (code, price, quantity or 1):
        # Only a code that ends in x and digits, written with nothing after it, reads
        # another way; then `whole` holds the code, for the caller to refuse the line.
        assert price is None and quantity is None and item.whole == code


def test_a_serial_tracked_product_sold_as_an_item_is_refused_by_the_cli(posd: Posd) -> None:
    result = posd("sell", "--invoice", "INV-1", "--customer", "Bo", "--item", "LAP")
    assert result.exit_code == 1
    assert "tracked by serial" in result.output
    assert "Traceback" not in result.output


# ---------------------------------------------------------------- CSV import


@pytest.mark.parametrize(
    ("row", "says"),
    [
        ("SN-1,LAP,PO-1,Acme,B1,NaN", "not an amount"),
        ("SN-1,LAP,PO-1,Acme,B1,1e30", "not an amount"),
        ("SN-1,LAP,PO-1,Acme,B1,-4", "not an amount"),
        ("SN-1,LAP,PO-1,Acme,B1,1.001", "not an amount"),
        ("SN-1,LAP,PO-1,Acme,B1,100000000.01", "outside"),
        ("SN-1,LAP,PO/1,Acme,B1,1", "'/'"),
        ("SN-1,LAP,PO-1,Acme,B+1,1", "'+'"),
        ("SN-1,LAP,PO-1," + "A" * 100_000 + ",B1,1", "too long"),
    ],
)
def test_a_csv_row_with_a_bad_value_is_reported_and_nothing_imported(
    ledger: Ledger, row: str, says: str
) -> None:
    text = "serial,product,po,supplier,branch,cost\nGOOD-1,LAP,PO-1,Acme,B1,1\n" + row + "\n"
    before = count_events(ledger)
    with pytest.raises(Refusal) as refused:
        import_csv(ledger, io.StringIO(text), actor="ann")
    assert [p.line for p in refused.value.problems] == [3]
    assert says in str(refused.value)
    assert count_events(ledger) == before


def test_a_csv_file_that_is_not_utf8_is_refused_by_the_cli(posd: Posd, tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(
        "serial,product,po,supplier,branch,cost\nSN-1,LAP,PO-1,Müller,B1,1\n".encode("latin-1")
    )
    result = posd("import", str(path))
    assert result.exit_code == 2
    assert "not UTF-8" in result.output and "Traceback" not in result.output


def test_a_csv_field_past_the_csv_module_limit_is_a_refusal(ledger: Ledger) -> None:
    text = 'serial,product,po,supplier,branch,cost\nSN-1,LAP,PO-1,"' + "A" * 200_000 + '",B1,1\n'
    with pytest.raises(Refusal) as refused:
        import_csv(ledger, io.StringIO(text), actor="ann")
    assert refused.value.code == "malformed_file"


@pytest.mark.parametrize(("terminal", "branch"), [("T/1", "B1"), ("T1", "B+1"), ("", "B1")])
def test_a_ledger_is_never_created_for_an_id_unsafe_in_topics(terminal: str, branch: str) -> None:
    with pytest.raises(Refusal) as refused:
        Ledger.create(None, terminal=terminal, branch=branch)
    assert refused.value.code == "bad_value"
