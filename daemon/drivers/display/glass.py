"""What goes on a customer display's glass, as bytes: the command sets of the pole
displays posd drives, text fitted into their twenty cells, and the fewest bytes that
turn what the glass shows into what it should show.

    data, cursor = plan_update(EPSON, shown, (fit_line("TOTAL 12.00", "cp437"), BLANK[1]),
                               cursor, "cp437")

No I/O here: `CustomerDisplay` (on its own thread) and `LoopWriter` (on the event loop)
hand these bytes to the port.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from daemon.drivers.base import spell_out

COLUMNS = 20
ROWS = 2


# -------------------------------------------------------------------- command sets


@dataclass(frozen=True)
class CommandSet:
    """The bytes one family of pole displays understands.

    Rows and columns are counted from 0 here; ``goto`` converts to the 1-based numbers
    both command sets put on the wire.
    """

    name: str
    init: bytes  # reset, overwrite mode, cursor hidden
    clear: bytes
    home: bytes
    carriage_return: bytes
    line_down: bytes  # lower line, same column
    cursor_left: bytes
    cursor_to: bytes  # followed by column and row bytes, both 1-based
    code_tables: Mapping[str, bytes]  # Python codec name -> bytes that select it
    default_code_table: str

    def goto(self, row: int, column: int) -> bytes:
        return self.cursor_to + bytes((column + 1, row + 1))

    def select_code_table(self, codec: str) -> bytes:
        try:
            return self.code_tables[codec]
        except KeyError:
            raise ValueError(
                f"code table {codec!r} is not offered by {self.name} displays; "
                f"choose one of {sorted(self.code_tables)}"
            ) from None


EPSON = CommandSet(
    name="epson",
    # ESC @ initialise, US MD1 overwrite mode, US C 0 hide the cursor
    init=b"\x1b@" + b"\x1f\x01" + b"\x1fC\x00",
    clear=b"\x0c",
    home=b"\x0b",
    carriage_return=b"\r",
    line_down=b"\n",
    cursor_left=b"\x08",
    cursor_to=b"\x1f$",  # US $ x y
    code_tables={"cp437": b"\x1bt\x00", "cp850": b"\x1bt\x02", "cp858": b"\x1bt\x13"},
    default_code_table="cp437",
)

CD5220 = CommandSet(
    name="cd5220",
    # ESC @ initialise, ESC DC1 overwrite mode, ESC _ 0 hide the cursor
    init=b"\x1b@" + b"\x1b\x11" + b"\x1b_\x00",
    clear=b"\x0c",
    home=b"\x0b",
    carriage_return=b"\r",
    line_down=b"\n",
    cursor_left=b"\x08",
    cursor_to=b"\x1bl",  # ESC l x y
    # CD5220 clones disagree on what sits above 0x7F, so only ASCII is trusted.
    code_tables={"ascii": b""},
    default_code_table="ascii",
)

COMMAND_SETS: Mapping[str, CommandSet] = {cs.name: cs for cs in (EPSON, CD5220)}


def command_set(name: str) -> CommandSet:
    """Look up a command set by the name used in configuration (``epson``, ``cd5220``)."""
    try:
        return COMMAND_SETS[name.lower()]
    except KeyError:
        raise ValueError(
            f"display model {name!r} is unknown; use one of {sorted(COMMAND_SETS)}"
        ) from None


# ----------------------------------------------------------------- text to glass


def _glyph(char: str, codec: str) -> bytes:
    if unicodedata.category(char).startswith("C"):
        return b"?"  # a control character would be taken as a display command
    try:
        return char.encode(codec)
    except UnicodeEncodeError:
        pass
    return spell_out(char).encode(codec, errors="replace")


def fit_line(text: str, codec: str, width: int = COLUMNS) -> bytes:
    """``text`` as exactly ``width`` cells in ``codec``: kept where the code table has the
    character, spelled out readably where it does not (``é`` -> ``e``), padded with spaces
    or cut at the right edge."""
    if text.isprintable():  # no control character: try the whole text in one go
        try:
            return text.encode(codec)[:width].ljust(width, b" ")
        except UnicodeEncodeError:
            pass
    cells = bytearray()
    for char in text:
        cells += _glyph(char, codec)
        if len(cells) >= width:
            break
    return bytes(cells[:width]).ljust(width, b" ")


# ------------------------------------------------------------------ update planner

Screen = tuple[bytes, bytes]
Cursor = tuple[int, int] | None  # (row, column); None when the display's cursor is unknown
BLANK: Screen = (b" " * COLUMNS, b" " * COLUMNS)


def _cheapest_move(cs: CommandSet, cursor: Cursor, row: int, column: int, new: Screen) -> bytes:
    """Bytes that bring the cursor to (row, column), possibly by rewriting cells of ``new``
    that are already on the glass: at one byte a cell that beats a four-byte jump."""
    options = [cs.goto(row, column)]
    if cursor is not None:
        at_row, at_column = cursor
        if at_row == row:
            if at_column <= column:
                options.append(new[row][at_column:column])
            else:
                options.append(cs.cursor_left * (at_column - column))
            options.append(cs.carriage_return + new[row][:column])
        elif at_row == row - 1:
            if at_column <= column:
                options.append(cs.line_down + new[row][at_column:column])
            else:
                options.append(cs.line_down + cs.cursor_left * (at_column - column))
            options.append(cs.line_down + cs.carriage_return + new[row][:column])
    if row == 0:
        options.append(cs.home + new[0][:column])
    return min(options, key=len)


def _changes(cs: CommandSet, old: Screen, new: Screen, cursor: Cursor) -> tuple[bytes, Cursor]:
    out = bytearray()
    for row in range(ROWS):
        column = 0
        while column < COLUMNS:
            if old[row][column] == new[row][column]:
                column += 1
                continue
            end = column
            while end < COLUMNS and old[row][end] != new[row][end]:
                end += 1
            out += _cheapest_move(cs, cursor, row, column, new)
            out += new[row][column:end]
            # Where the cursor goes after the last column differs between models.
            cursor = (row, end) if end < COLUMNS else None
            column = end
    return bytes(out), cursor


def plan_update(
    cs: CommandSet, old: Screen | None, new: Screen, cursor: Cursor, code_table: str
) -> tuple[bytes, Cursor]:
    """The shortest bytes (of those tried) that turn ``old`` into ``new`` on the glass,
    and where the cursor ends up. ``old=None`` means the glass is unknown: reset and
    repaint everything."""
    if old is None:
        # Where CLR leaves the cursor is not documented for every model: treat it as unknown.
        body, end = _changes(cs, BLANK, new, None)
        return cs.init + cs.select_code_table(code_table) + cs.clear + body, end
    diff, diff_end = _changes(cs, old, new, cursor)
    fresh, fresh_end = _changes(cs, BLANK, new, None)
    if len(cs.clear + fresh) < len(diff):
        return cs.clear + fresh, fresh_end
    return diff, diff_end
