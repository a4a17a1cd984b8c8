"""Whatever text a lane shows, the display gets exactly twenty cells of its code
table, and the same cells whether the text is encoded whole or a character at a time."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from daemon.drivers.display import fit_line
from daemon.drivers.display.glass import COMMAND_SETS, _glyph

CODECS = sorted({codec for cs in COMMAND_SETS.values() for codec in cs.code_tables})


def _one_at_a_time(text: str, codec: str, width: int = 20) -> bytes:
    cells = bytearray()
    for char in text:
        cells += _glyph(char, codec)
        if len(cells) >= width:
            break
    return bytes(cells[:width]).ljust(width, b" ")


@given(text=st.text(max_size=60), codec=st.sampled_from(CODECS))
def test_any_text_fills_exactly_twenty_cells_with_no_control_bytes(text: str, codec: str) -> None:
    cells = fit_line(text, codec)
    assert len(cells) == 20
    assert all(byte >= 0x20 for byte in cells)  # a control byte would be a command
    assert cells == _one_at_a_time(text, codec)


@given(
    text=st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40),
    codec=st.sampled_from(CODECS),
)
def test_plain_text_is_shown_as_typed(text: str, codec: str) -> None:
    assert fit_line(text, codec) == text.encode("ascii")[:20].ljust(20, b" ")
