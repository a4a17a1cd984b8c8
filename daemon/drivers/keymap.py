"""Keyboard layouts for keyboard-wedge scanners, with no display server in sight.

A wedge scanner types each barcode as key presses for the keyboard layout it was set
up for; the kernel only says which keys went down. `KeyboardLayout("de")` compiles
that layout with libxkbcommon (the library Wayland compositors and X use), and
`layout.decoder()` turns evdev key events into the characters a person at a desktop
would have seen, with Shift, Caps Lock, AltGr and Ctrl (Ctrl+] types GS, 0x1D, the way
many scanners send the GS1 group separator).

`layout.keystrokes_for(char)` answers the reverse question — which key and which held
modifiers type a character — found by walking the compiled keymap, not from a hand
table. Simulators use it to type like a real scanner on any layout.

Dead keys are not composed: a character that a layout only reaches through a dead key
(`^` on `de`) is not typed by the simulator and decodes to nothing. Set such scanners
to a layout without dead keys for those characters, or use a serial scanner.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evdev import ecodes
from xkbcommon import xkb

from daemon.config.spelling import did_you_mean
from daemon.errors import ConfigError

# xkb numbers keys as evdev does plus 8 (an X11 convention kept by libxkbcommon).
XKB_KEYCODE_OFFSET = 8

# Keys probed to learn which evdev key sets which xkb modifier on a layout; the first
# that sets a modifier bit is the one the simulator holds for it.
_MODIFIER_KEYS = (
    ecodes.KEY_LEFTSHIFT,
    ecodes.KEY_RIGHTALT,
    ecodes.KEY_LEFTCTRL,
    ecodes.KEY_LEFTALT,
    ecodes.KEY_LEFTMETA,
    ecodes.KEY_RIGHTSHIFT,
    ecodes.KEY_RIGHTCTRL,
)
_KEYPAD_KEYS = frozenset(code for name, code in ecodes.ecodes.items() if name.startswith("KEY_KP"))


class LayoutError(ConfigError):
    """A layout that cannot be compiled, or a character it cannot type."""


@dataclass(frozen=True)
class Keystroke:
    """One key pressed while the `hold` modifier keys are down (evdev key codes)."""

    key: int
    hold: tuple[int, ...] = ()


def check_layout(layout: str) -> str:
    """`layout` when libxkbcommon compiles it as a keyboard layout (`de`, `fr`, `us`);
    LayoutError, with the nearest layout name, when it does not (`german`)."""
    _compile(layout, "", "pc105", "")
    return layout


def _compile(layout: str, variant: str, model: str, options: str) -> Any:
    log: list[str] = []

    def keep(_context: object, _level: int, message: str) -> None:
        if len(log) < 20:  # xkbcommon's reasons, for the error below
            log.append(message.strip())

    context = xkb.Context(no_environment_names=True)
    context.set_log_fn(keep)
    try:
        return context.keymap_new_from_names(
            rules="evdev", model=model, layout=layout, variant=variant, options=options
        )
    except xkb.XKBKeymapCreationFailure:
        detail = "; ".join(log[-3:]) or "xkbcommon gave no reason"
        name = f"{layout}({variant})" if variant else layout
        known = known_layouts(context)
        hint = did_you_mean(layout, known, _other_words(known))
        said = f"; xkbcommon said: {detail}" if not hint else ""
        raise LayoutError(
            f"keyboard layout {name!r} could not be compiled{': ' + hint if hint else '.'} "
            "Layouts are XKB names such as us, gb, de or fr (`localectl "
            f"list-x11-keymap-layouts` lists them{said})"
        ) from None


def known_layouts(context: Any = None) -> dict[str, str]:
    """The layouts the system's XKB registry lists, each with what it is called in
    English: `{"us": "English (US)", "de": "German", …}`; {} when there is no registry."""
    context = context or xkb.Context(no_environment_names=True)
    for folder in context.include_path():
        registry = Path(folder) / "rules" / "evdev.xml"
        try:
            tree = ElementTree.parse(registry)
        except (OSError, ElementTree.ParseError):
            continue
        found: dict[str, str] = {}
        for item in tree.getroot().iterfind("./layoutList/layout/configItem"):
            name = item.findtext("name")
            if name:
                found.setdefault(name, item.findtext("description") or name)
        return found
    return {}


def _other_words(known: dict[str, str]) -> dict[str, str]:
    """What people call each layout: `German` and `German (Austria)` are `de` and `at`,
    and `English` alone is the first English layout listed (`us`)."""
    words = {description: name for name, description in known.items()}
    for name, description in known.items():
        words.setdefault(description.split(" (")[0], name)
    return words


class KeyboardLayout:
    """A compiled XKB keyboard layout, e.g. `KeyboardLayout("fr")` or `("de", "nodeadkeys")`.

    Compiling takes milliseconds; build one per configured scanner and share it.
    """

    def __init__(
        self, layout: str = "us", variant: str = "", *, model: str = "pc105", options: str = ""
    ) -> None:
        self.layout = layout
        self.variant = variant
        self._keymap: Any = _compile(layout, variant, model, options)
        # What each key types in each state (effective modifiers and layout), filled as
        # keys are seen; it depends on nothing else, so every decoder shares it. `_plain`
        # holds the same keys-in-states once seen to change nothing in xkb.
        self._text: dict[int, str] = {}
        self._plain: set[int] = set()
        self._modifier_for_bit, self._caps_bit = self._probe_modifiers()
        self._strokes: dict[tuple[str, bool], Keystroke | None] = {}
        self._candidates: dict[str, list[tuple[int, int]]] | None = None

    @property
    def name(self) -> str:
        return f"{self.layout}({self.variant})" if self.variant else self.layout

    def __repr__(self) -> str:
        return f"KeyboardLayout({self.name!r})"

    def decoder(self) -> KeyDecoder:
        """A fresh decoder: no keys down, Caps Lock off, Num Lock on.

        Num Lock starts on because scanners set to send digits from the keypad assume
        it is, as it is on most terminals after boot.
        """
        return KeyDecoder(self)

    def keystrokes_for(self, char: str, *, caps_lock: bool = False) -> Keystroke:
        """The key and held modifiers that type `char`, given the Caps Lock state."""
        if len(char) != 1:
            raise LayoutError(f"{char!r} is not one character; give characters one at a time")
        if (char, caps_lock) not in self._strokes:
            self._strokes[(char, caps_lock)] = self._find_keystroke(char, caps_lock)
        found = self._strokes[(char, caps_lock)]
        if found is None:
            raise LayoutError(
                f"the character {char!r} (U+{ord(char):04X}) cannot be typed on keyboard layout "
                f"{self.name!r} without a dead key or compose sequence; choose a layout that has it"
            )
        return found

    def can_type(self, char: str, *, caps_lock: bool = False) -> bool:
        try:
            self.keystrokes_for(char, caps_lock=caps_lock)
        except LayoutError:
            return False
        return True

    def key_events_for(self, text: str, *, caps_lock: bool = False) -> Iterator[tuple[int, int]]:
        """(evdev key code, value) pairs that type `text`: modifiers down, key, modifiers up."""
        for char in text:
            stroke = self.keystrokes_for(char, caps_lock=caps_lock)
            for held in stroke.hold:
                yield held, 1
            yield stroke.key, 1
            yield stroke.key, 0
            for held in reversed(stroke.hold):
                yield held, 0

    def _probe_modifiers(self) -> tuple[dict[int, int], int]:
        modifier_for_bit: dict[int, int] = {}
        for key in _MODIFIER_KEYS:
            state = self._keymap.state_new()
            state.update_key(key + XKB_KEYCODE_OFFSET, xkb.XKB_KEY_DOWN)
            mask = state.serialize_mods(xkb.XKB_STATE_MODS_DEPRESSED)
            for bit in _bits(mask):
                modifier_for_bit.setdefault(bit, key)
        state = self._keymap.state_new()
        caps = ecodes.KEY_CAPSLOCK + XKB_KEYCODE_OFFSET
        state.update_key(caps, xkb.XKB_KEY_DOWN)
        state.update_key(caps, xkb.XKB_KEY_UP)
        return modifier_for_bit, state.serialize_mods(xkb.XKB_STATE_MODS_LOCKED)

    def _all_candidates(self) -> dict[str, list[tuple[int, int]]]:
        """Every (xkb keycode, modifier mask) that types each single character."""
        if self._candidates is None:
            found: dict[str, list[tuple[int, int]]] = {}
            keymap = self._keymap
            for keycode in keymap:
                for level in range(keymap.num_levels_for_key(keycode, 0)):
                    syms = keymap.key_get_syms_by_level(keycode, 0, level)
                    if len(syms) != 1:
                        continue
                    text = xkb.keysym_to_string(syms[0])
                    if text is None or len(text) != 1:
                        continue
                    for mask in keymap.key_get_mods_for_level(keycode, 0, level):
                        found.setdefault(text, []).append((keycode, mask))
            self._candidates = found
        return self._candidates

    def _find_keystroke(self, char: str, caps_lock: bool) -> Keystroke | None:
        if len(char) != 1:
            return None
        control = None
        if ord(char) < 0x20 and char not in "\r\t":
            # Ctrl plus the character 0x40 above it: Ctrl+] is GS, Ctrl+A is SOH.
            control = self._modifier_for_bit.get(_CONTROL_BIT)
            base = chr(ord(char) + 0x40)
            options = self._all_candidates().get(base, []) + self._all_candidates().get(
                base.lower(), []
            )
        else:
            options = self._all_candidates().get(char, [])

        def preference(option: tuple[int, int]) -> tuple[bool, int, int]:
            # Main keys before the keypad, then fewest modifiers with Shift before AltGr:
            # the keys a scanner set to this layout sends.
            keycode, mask = option
            effort = sum(1 if bit == _SHIFT_BIT else 2 for bit in _bits(mask))
            return (keycode - XKB_KEYCODE_OFFSET in _KEYPAD_KEYS, effort, keycode)

        for keycode, mask in sorted(options, key=preference):
            hold: list[int] = []
            for bit in _bits(mask & ~self._caps_bit):
                modifier = self._modifier_for_bit.get(bit)
                if modifier is None:
                    break
                hold.append(modifier)
            else:
                if control is not None and control not in hold:
                    hold.insert(0, control)
                tries = [hold]
                shift = self._modifier_for_bit.get(_SHIFT_BIT)
                if caps_lock and shift is not None and shift not in hold:
                    # With Caps Lock on, Shift gives the lower case of a letter.
                    tries.append([shift, *hold])
                for attempt in tries:
                    stroke = Keystroke(keycode - XKB_KEYCODE_OFFSET, tuple(attempt))
                    if self._types(stroke, caps_lock) == char:
                        return stroke
        return None

    def _types(self, stroke: Keystroke, caps_lock: bool) -> str:
        """What the keystroke really types, checked on a scratch keyboard state."""
        decoder = self.decoder()
        if caps_lock:
            decoder.key(ecodes.KEY_CAPSLOCK, 1)
            decoder.key(ecodes.KEY_CAPSLOCK, 0)
        for held in stroke.hold:
            decoder.key(held, 1)
        return decoder.key(stroke.key, 1)


# xkb's real modifiers have fixed bits: Shift 0, Lock 1, Control 2.
_SHIFT_BIT = 1 << 0
_CONTROL_BIT = 1 << 2


def _bits(mask: int) -> list[int]:
    return [1 << n for n in range(32) if mask & (1 << n)]


class KeyDecoder:
    """Turns evdev key events into text for one keyboard (one scanner).

    Feed every EV_KEY event in order with `key(code, value)`; it returns the text that
    event typed ("" for modifiers, releases and dead keys).
    """

    def __init__(self, layout: KeyboardLayout) -> None:
        self._layout = layout
        self._state: Any = layout._keymap.state_new()
        # Scans arrive as bursts of key events, so this is a hot path. The binding wraps
        # every call in Python objects (an enum per update_key, a buffer per string),
        # costing microseconds a key; the C functions themselves are cheap, so the
        # state-changing calls go to them directly and text is looked up in `_text`.
        self._c_state = self._state._state
        self._update_key = xkb.lib.xkb_state_update_key
        self._serialize_mods = xkb.lib.xkb_state_serialize_mods
        self._serialize_layout = xkb.lib.xkb_state_serialize_layout
        self._several_layouts = layout._keymap.num_layouts() > 1
        self._text = layout._text
        self._plain = layout._plain
        self._state_key = 0  # effective modifiers and layout, shifted to sit above key codes
        self._latched = False
        # Keys held down, each with whether xkb was told (False for `_plain` keys).
        self._down: dict[int, bool] = {}
        self.key(ecodes.KEY_NUMLOCK, 1)
        self.key(ecodes.KEY_NUMLOCK, 0)

    @property
    def layout(self) -> KeyboardLayout:
        return self._layout

    @property
    def caps_lock(self) -> bool:
        return bool(self._state.serialize_mods(xkb.XKB_STATE_MODS_LOCKED) & self._layout._caps_bit)

    def is_down(self, code: int) -> bool:
        return code in self._down

    def release(self, code: int) -> bool:
        """A key went up; False if it was not down (its press was lost or never seen)."""
        told = self._down.pop(code, None)
        if told:
            self._apply(code + XKB_KEYCODE_OFFSET, _KEY_UP)
        return told is not None

    def key(self, code: int, value: int) -> str:
        """Feed one key event (value 1 press, 0 release, 2 autorepeat); return its text."""
        if value == 0:
            if self._down.pop(code, False):
                self._apply(code + XKB_KEYCODE_OFFSET, _KEY_UP)
            return ""
        if not 0 <= code <= _KEY_MAX:
            return ""
        lookup = self._state_key | code
        text = self._text.get(lookup)
        if text is None:
            text = self._state.key_get_string(code + XKB_KEYCODE_OFFSET)
            self._text[lookup] = text
        if value != 1 or code in self._down:
            return text  # autorepeat, or a press whose release was lost
        if lookup in self._plain and not self._latched:
            self._down[code] = False
            return text
        self._down[code] = True
        changed = self._apply(code + XKB_KEYCODE_OFFSET, _KEY_DOWN)
        if not changed and not self._latched and text.isprintable() and text:
            # Typed a visible character and changed nothing: such a key has no action
            # in this state, so xkb need not hear of it again here.
            self._plain.add(lookup)
        return text

    def release_all(self) -> None:
        """Let go of every key still down (after lost events); Caps Lock stays as it was."""
        for code in sorted(self._down):
            self.key(code, 0)

    def _apply(self, keycode: int, direction: int) -> bool:
        if not self._update_key(self._c_state, keycode, direction):
            return False
        mods = self._serialize_mods(self._c_state, _MODS_EFFECTIVE)
        group = (
            self._serialize_layout(self._c_state, _LAYOUT_EFFECTIVE) if self._several_layouts else 0
        )
        self._latched = bool(self._serialize_mods(self._c_state, _MODS_LATCHED))
        self._state_key = ((mods << 2) | group) << 16
        return True


_KEY_MAX = ecodes.KEY_MAX
_KEY_UP = int(xkb.XKB_KEY_UP)
_KEY_DOWN = int(xkb.XKB_KEY_DOWN)
_MODS_EFFECTIVE = int(xkb.XKB_STATE_MODS_EFFECTIVE)
_MODS_LATCHED = int(xkb.XKB_STATE_MODS_LATCHED)
_LAYOUT_EFFECTIVE = int(xkb.XKB_STATE_LAYOUT_EFFECTIVE)
