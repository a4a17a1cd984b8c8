"""Key events decoded with the scanner's keyboard layout, and the keys that type a character."""

from __future__ import annotations

import string

import pytest
from evdev import ecodes as e
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.drivers.keymap import KeyboardLayout, LayoutError

LAYOUT_NAMES = ("us", "gb", "de", "fr")
LAYOUTS = {name: KeyboardLayout(name) for name in LAYOUT_NAMES}
SHIFT, ALTGR, CTRL = e.KEY_LEFTSHIFT, e.KEY_RIGHTALT, e.KEY_LEFTCTRL


def stroke(key: int, *hold: int) -> list[tuple[int, int]]:
    """Key events for one key pressed while `hold` keys are down."""
    return [
        *((h, 1) for h in hold),
        (key, 1),
        (key, 0),
        *((h, 0) for h in reversed(hold)),
    ]


def decode(layout: KeyboardLayout, events: list[tuple[int, int]]) -> str:
    decoder = layout.decoder()
    return "".join(decoder.key(code, value) for code, value in events)


# "ZY-A/Q.1@" as a scanner set to each layout really types it: Y/Z swap on de, A/Q and
# Z/W on fr, digits need Shift on fr, and -, /, ., @ move between layouts.
BARCODE = "ZY-A/Q.1@"
GOLDEN = {
    "us": [
        *stroke(e.KEY_Z, SHIFT), *stroke(e.KEY_Y, SHIFT), *stroke(e.KEY_MINUS),
        *stroke(e.KEY_A, SHIFT), *stroke(e.KEY_SLASH), *stroke(e.KEY_Q, SHIFT),
        *stroke(e.KEY_DOT), *stroke(e.KEY_1), *stroke(e.KEY_2, SHIFT),
    ],
    "gb": [
        *stroke(e.KEY_Z, SHIFT), *stroke(e.KEY_Y, SHIFT), *stroke(e.KEY_MINUS),
        *stroke(e.KEY_A, SHIFT), *stroke(e.KEY_SLASH), *stroke(e.KEY_Q, SHIFT),
        *stroke(e.KEY_DOT), *stroke(e.KEY_1), *stroke(e.KEY_APOSTROPHE, SHIFT),
    ],
    "de": [
        *stroke(e.KEY_Y, SHIFT), *stroke(e.KEY_Z, SHIFT), *stroke(e.KEY_SLASH),
        *stroke(e.KEY_A, SHIFT), *stroke(e.KEY_7, SHIFT), *stroke(e.KEY_Q, SHIFT),
        *stroke(e.KEY_DOT), *stroke(e.KEY_1), *stroke(e.KEY_Q, ALTGR),
    ],
    "fr": [
        *stroke(e.KEY_W, SHIFT), *stroke(e.KEY_Y, SHIFT), *stroke(e.KEY_6),
        *stroke(e.KEY_Q, SHIFT), *stroke(e.KEY_DOT, SHIFT), *stroke(e.KEY_A, SHIFT),
        *stroke(e.KEY_COMMA, SHIFT), *stroke(e.KEY_1, SHIFT), *stroke(e.KEY_0, ALTGR),
    ],
}  # fmt: skip


@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_the_same_barcode_typed_on_each_layout_decodes_to_the_same_text(name: str) -> None:
    assert decode(LAYOUTS[name], GOLDEN[name]) == BARCODE


@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_the_keys_found_for_a_text_are_the_keys_a_scanner_on_that_layout_presses(
    name: str,
) -> None:
    assert list(LAYOUTS[name].key_events_for(BARCODE)) == GOLDEN[name]


def test_a_german_scanner_read_as_us_swaps_y_and_z_which_is_why_the_layout_is_configured() -> None:
    assert decode(LAYOUTS["us"], GOLDEN["de"]) != BARCODE
    assert decode(LAYOUTS["us"], GOLDEN["de"]).startswith("YZ")


@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_caps_lock_on_the_scanner_upper_cases_letters_and_shift_lowers_them(name: str) -> None:
    layout = LAYOUTS[name]
    s, n = layout.keystrokes_for("s").key, layout.keystrokes_for("n").key
    x = layout.keystrokes_for("x").key
    events = [*stroke(e.KEY_CAPSLOCK), *stroke(s), *stroke(n), *stroke(x, SHIFT)]
    assert decode(layout, events) == "SNx"


@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_text_typed_with_caps_lock_on_still_decodes_exactly(name: str) -> None:
    layout = LAYOUTS[name]
    text = "Sn-42/Ab.Zy"
    events = [*stroke(e.KEY_CAPSLOCK), *layout.key_events_for(text, caps_lock=True)]
    assert decode(layout, events) == text


def test_altgr_characters_decode_on_layouts_that_have_them() -> None:
    assert decode(LAYOUTS["de"], stroke(e.KEY_Q, ALTGR)) == "@"
    assert decode(LAYOUTS["de"], stroke(e.KEY_E, ALTGR)) == "€"
    assert decode(LAYOUTS["fr"], stroke(e.KEY_3, ALTGR)) == "#"
    assert decode(LAYOUTS["gb"], stroke(e.KEY_4, ALTGR)) == "€"


@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_ctrl_close_bracket_types_the_gs1_group_separator(name: str) -> None:
    layout = LAYOUTS[name]
    assert decode(layout, list(layout.key_events_for("\x1d"))) == "\x1d"
    assert CTRL in layout.keystrokes_for("\x1d").hold


@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_keypad_digits_from_scanners_in_keypad_mode_decode_as_digits(name: str) -> None:
    events = [*stroke(e.KEY_KP4), *stroke(e.KEY_KP2), *stroke(e.KEY_KPMINUS)]
    assert decode(LAYOUTS[name], events) == "42-"


def test_an_unknown_layout_is_refused_naming_it() -> None:
    with pytest.raises(LayoutError, match="'xx'"):
        KeyboardLayout("xx")


def test_a_character_only_reachable_through_a_dead_key_is_refused_naming_it() -> None:
    with pytest.raises(LayoutError, match=r"'\^'.*'de'"):
        LAYOUTS["de"].keystrokes_for("^")


@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_every_printable_ascii_character_round_trips_on_each_layout(name: str) -> None:
    layout = LAYOUTS[name]
    typeable = "".join(ch for ch in string.printable.strip() if layout.can_type(ch))
    assert decode(layout, list(layout.key_events_for(typeable))) == typeable
    # Only dead-key characters are missing, and only on de.
    assert set(string.printable.strip()) - set(typeable) <= {"^", "`"}


def _typeable(name: str) -> st.SearchStrategy[str]:
    alphabet = [ch for ch in string.printable.strip() if LAYOUTS[name].can_type(ch)]
    return st.text(st.sampled_from(alphabet), max_size=30)


@pytest.mark.parametrize("name", LAYOUT_NAMES)
@settings(max_examples=60, deadline=None)
@given(data=st.data(), caps=st.booleans())
def test_any_serial_typed_on_a_layout_decodes_back(
    name: str, data: st.DataObject, caps: bool
) -> None:
    layout = LAYOUTS[name]
    text = data.draw(_typeable(name))
    events = stroke(e.KEY_CAPSLOCK) if caps else []
    events += layout.key_events_for(text, caps_lock=caps)
    assert decode(layout, events) == text


def _random_events() -> st.SearchStrategy[list[tuple[int, int]]]:
    return st.lists(st.tuples(st.integers(0, 0x2FF), st.integers(-1, 3)), max_size=60)


@settings(max_examples=200, deadline=None)
@given(events=_random_events(), name=st.sampled_from(LAYOUT_NAMES))
def test_random_key_events_never_break_the_decoder(
    events: list[tuple[int, int]], name: str
) -> None:
    decoder = LAYOUTS[name].decoder()
    for code, value in events:
        assert isinstance(decoder.key(code, value), str)
    decoder.release_all()
    assert not any(decoder.is_down(code) for code, _ in events)
