"""The values people and other programs hand posd, each kind checked in one place.

    parse_money("12.50", "price")               # 1250 (cents), or BadValueError
    IDENTIFIER.check("BR-017", "branch")        # "BR-017", or BadValueError
    NAME.problem("", "customer")                # 'customer "" is empty; …' (None: fine)

    class Settings(BaseModel):
        branch: Identifier                       # the same check inside pydantic

Every interface (the command line, CSV import, the kiosk API, the configuration file,
replication) and the ledger's own operations use these, so a value that one of them
refuses cannot come in through another. Each refusal quotes the bad value and says what
is expected.

- **Money** is integer cents from 0 to `MAX_CENTS`, read from text exactly: digits,
  optionally a point and one or two decimals. No sign, exponent, NaN or infinity, and
  never through a float.
- **Quantity** is a whole number from 1 to `MAX_QUANTITY`.
- **Identifiers** (terminal, branch, product and document ids) end up in MQTT topic
  levels, file names and invoice numbers: 1 to 64 letters, digits and `- _ . :`,
  starting with a letter or digit. No `/ + #`, spaces or control characters.
- **Names** (people, customers, suppliers, products) are one line of at most 128
  characters; **notes** (reasons, conditions, faults) at most 2,000, and may have
  line breaks. Neither may hold other control characters.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, Field

from daemon.errors import PosdError

MAX_CENTS = 10_000_000_000  # 100,000,000.00: more than any one thing a store sells
MAX_QUANTITY = 100_000
MAX_IDENTIFIER = 64
MAX_NAME = 128
MAX_NOTE = 2000
_SHOWN = 40  # characters of a long value quoted in a message

_MONEY = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,2})?", re.ASCII)
_QUANTITY = re.compile(r"[0-9]{1,9}", re.ASCII)
_IDENTIFIER_PUNCTUATION = frozenset("-_.:")
# Text that flips the direction of what follows it ("Trojan source"), shown on receipts
# and the dashboard as something other than what was stored.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class BadValueError(PosdError, ValueError):
    """A value that cannot be used; the message quotes it and says what is expected."""

    code = "bad_value"


def shown(value: str) -> str:
    """A value in double quotes, control characters made visible, cut when long."""
    if len(value) <= _SHOWN:
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value[:_SHOWN], ensure_ascii=False) + f"… ({len(value)} characters)"


# ---------------------------------------------------------------- money and quantities


def money_problem(value: object, what: str = "amount") -> str | None:
    """Why `value` (whole cents) is not an amount of money, or None."""
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{what} {value!r} is not a whole number of cents"
    if not 0 <= value <= MAX_CENTS:
        return f"{what} {_money_text(value)} is outside 0.00 to {_money_text(MAX_CENTS)}"
    return None


def check_cents(value: int, what: str = "amount") -> int:
    """`value` (cents) if it is a usable amount, else BadValueError."""
    problem = money_problem(value, what)
    if problem is not None:
        raise BadValueError(problem)
    return value


def parse_money(text: str, what: str = "amount") -> int:
    """The cents in `text` (`12`, `12.5`, `12.50`), read exactly; BadValueError when it
    is not such an amount or outside 0.00 to `MAX_CENTS`."""
    stripped = text.strip() if isinstance(text, str) else ""
    if not _MONEY.fullmatch(stripped):
        raise BadValueError(
            f"{what} {shown(str(text))} is not an amount like 12.50 (digits, and at most two "
            f"decimals after a point; no sign or exponent)"
        )
    cents = int(Decimal(stripped).scaleb(2))
    return check_cents(cents, what)


def _money_text(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole}.{part:02d}"


def quantity_problem(value: object, what: str = "quantity") -> str | None:
    """Why `value` is not a quantity (a whole number 1 to MAX_QUANTITY), or None."""
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{what} {value!r} is not a whole number"
    if not 1 <= value <= MAX_QUANTITY:
        return f"{what} {value} is outside 1 to {MAX_QUANTITY}"
    return None


def check_quantity(value: int, what: str = "quantity") -> int:
    problem = quantity_problem(value, what)
    if problem is not None:
        raise BadValueError(problem)
    return value


def parse_quantity(text: str, what: str = "quantity") -> int:
    """The whole number in `text`, 1 to `MAX_QUANTITY`; BadValueError otherwise."""
    stripped = text.strip() if isinstance(text, str) else ""
    if not _QUANTITY.fullmatch(stripped):
        raise BadValueError(f"{what} {shown(str(text))} is not a whole number like 3")
    return check_quantity(int(stripped), what)


# ---------------------------------------------------------------- text


@dataclass(frozen=True)
class TextKind:
    """A kind of text value: how long it may be and which characters it may hold.

    `problem(value, what)` says what is wrong (None: nothing); `check` raises it."""

    noun: str  # "identifier", "name", "note": how messages speak of the kind
    max_length: int
    min_length: int
    identifier: bool = False  # letters, digits and - _ . : only
    multiline: bool = False  # line breaks and tabs allowed (notes)

    def problem(self, value: object, what: str | None = None) -> str | None:
        what = what or self.noun
        if not isinstance(value, str):
            return f"{what} {value!r} is not text"
        if len(value) > self.max_length:
            return f"{what} {shown(value)} is too long; the most is {self.max_length} characters"
        if len(value.strip()) < self.min_length:
            return f"{what} {shown(value)} is empty"
        if self.identifier:
            return self._identifier_problem(value, what)
        for ch in value:
            if self.multiline and ch in "\n\t":
                continue
            if _is_control(ch):
                where = "" if self.multiline else "; it must be one line"
                return f"{what} {shown(value)} has a control character (U+{ord(ch):04X}){where}"
        return None

    def _identifier_problem(self, value: str, what: str) -> str | None:
        if not value[0].isalnum():
            return f"{what} {shown(value)} must start with a letter or digit; {self._rule()}"
        for ch in value:
            if ch.isalnum() or ch in _IDENTIFIER_PUNCTUATION:
                continue
            if _is_control(ch):
                char = f"a control character (U+{ord(ch):04X})"
            elif ch.isspace():
                char = "a space"
            else:
                char = f"the character {ch!r}"
            return f"{what} {shown(value)} has {char}; {self._rule()}"
        return None

    def _rule(self) -> str:
        return (
            f"ids are 1 to {self.max_length} letters, digits and - _ . : (they name MQTT "
            "topics and files, where / + # and spaces cannot go)"
        )

    def check(self, value: str, what: str | None = None) -> str:
        """`value` if it is fine, else BadValueError quoting it."""
        problem = self.problem(value, what)
        if problem is not None:
            raise BadValueError(problem)
        return value


def _is_control(ch: str) -> bool:
    category = unicodedata.category(ch)
    return category in ("Cc", "Cs", "Zl", "Zp") or ch in _BIDI_CONTROLS


IDENTIFIER = TextKind("id", MAX_IDENTIFIER, 1, identifier=True)
NAME = TextKind("name", MAX_NAME, 1)
NOTE = TextKind("note", MAX_NOTE, 0, multiline=True)
LINE = TextKind("text", MAX_NAME, 0)  # one line that may be empty (a command's argument)


def _pydantic(kind: TextKind, what: str | None = None) -> AfterValidator:
    return AfterValidator(lambda value: kind.check(value, what))


# The same kinds as pydantic field types: the error names the key, the message the value.
Identifier = Annotated[str, _pydantic(IDENTIFIER)]
Name = Annotated[str, _pydantic(NAME)]
Note = Annotated[str, _pydantic(NOTE)]
Line = Annotated[str, _pydantic(LINE)]
Cents = Annotated[int, Field(strict=True, ge=0, le=MAX_CENTS)]
Quantity = Annotated[int, Field(strict=True, ge=1, le=MAX_QUANTITY)]


def checked_identifier(what: str) -> AfterValidator:
    """A pydantic validator for an identifier whose messages call it `what`."""
    return _pydantic(IDENTIFIER, what)
