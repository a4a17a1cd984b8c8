"""Command-line types for posd's values: `--price 12.50`, `--branch BR-017`, …

Each one reads its option through the one check for that kind of value
(`daemon.rules.values`), so a bad value stops the command before it opens the ledger,
with click's usual message naming the option: `Invalid value for '--price': price
"-5" is not an amount like 12.50 …` (exit status 2).

`parse_sale_item` reads the `PRODUCT[@PRICE][xQTY]` of `posd sell --item`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from daemon.rules.values import (
    IDENTIFIER,
    NAME,
    NOTE,
    BadValueError,
    TextKind,
    parse_money,
    parse_quantity,
)


class ValueType(click.ParamType[Any, Any]):
    """A click type that reads its value with one of posd's value checks."""

    def __init__(self, name: str, read: Callable[[str, str], Any]) -> None:
        self.name = name
        self._read = read

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value  # a default already of the right type
        what = (param.name or self.name).replace("_", " ") if param is not None else self.name
        try:
            return self._read(value, what)
        except BadValueError as problem:
            self.fail(str(problem), param, ctx)


def _text(kind: TextKind) -> Callable[[str, str], str]:
    return lambda value, what: kind.check(value, what)


MONEY = ValueType("amount", parse_money)
QUANTITY = ValueType("quantity", parse_quantity)
ID = ValueType("id", _text(IDENTIFIER))
NAME_TEXT = ValueType("name", _text(NAME))
NOTE_TEXT = ValueType("text", _text(NOTE))


@dataclass(frozen=True)
class SaleItem:
    """One `--item`: a product code, its price (None: the shelf price) and a quantity.

    `whole`: the product code the text would be if its `xQTY` were part of the code
    (`BOX2` for `BOXx2`), so the caller can refuse text that names two products."""

    code: str
    price_cents: int | None
    quantity: int
    whole: str | None = None


_QUANTITY_SUFFIX = re.compile(r"x([0-9]+)", re.ASCII)


def parse_sale_item(text: str) -> SaleItem:
    """Read `PRODUCT[@PRICE][xQTY]`, the quantity split off the right.

    Product codes are ids, so they never hold `@`: everything after the `@` is the
    price and the quantity (`12.50x3`), unambiguous because a price has no `x`. Without
    an `@`, a trailing `x` and digits is the quantity; when the whole text could also be
    a product code (`BOXx2`), `whole` says so. BadValueError when a part is bad.
    """
    code, at, rest = text.partition("@")
    quantity_text = ""
    whole = None
    if at:
        price_text, cross, quantity_text = rest.partition("x")
        if cross and not quantity_text:
            raise BadValueError(
                f"item {text!r}: write the quantity after the x, e.g. {code}@2.50x3"
            )
        if not price_text:
            raise BadValueError(f"item {text!r}: write the price after the @, e.g. {code}@2.50")
        price: int | None = parse_money(price_text, "price")
    else:
        price = None
        head, cross, tail = code.rpartition("x")
        if cross and head and _QUANTITY_SUFFIX.fullmatch(cross + tail):
            whole = code
            code, quantity_text = head, tail
    IDENTIFIER.check(code, "product")
    quantity = parse_quantity(quantity_text) if quantity_text else 1
    if whole is not None and IDENTIFIER.problem(whole) is not None:
        whole = None
    return SaleItem(code, price, quantity, whole)
