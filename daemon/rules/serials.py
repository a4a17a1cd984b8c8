"""Serial numbers: the key uniqueness is judged on, and what a serial may contain.

A serial is stored exactly as the supplier printed it. Uniqueness and look-up use
its key: Unicode NFKC, trimmed, upper-cased, so a full-width serial scanned from one
label and the same serial typed in lower case by hand find the same unit.

A product may give a serial format rule, a regular expression every key must match
(`compile_serial_rule`). Rules run on RE2 (google-re2), whose matching time grows
linearly with the serial, so no rule, however written, can make a terminal hang on a
scan as Python's backtracking `re` does on `(A+)+$` against `AAAA…B`. RE2 refuses what
it cannot match in linear time (back-references, look-arounds) when the rule is given.
"""

from __future__ import annotations

import json
import re
import unicodedata

# The binding's own Match: the `re2` module's Python wrapper around it costs about
# 15 µs a call, five times the match itself, on every serial of an import.
import _re2
import re2

from daemon.errors import LedgerError

MAX_SERIAL_LENGTH = 64
_ALLOWED_PUNCTUATION = frozenset("-_./:")
# Most serials are plain ASCII; those need no Unicode normalisation.
_PLAIN_KEY = re.compile(rf"[A-Z0-9._/:-]{{1,{MAX_SERIAL_LENGTH}}}")


def quoted(text: str) -> str:
    """A value in double quotes, with control characters made visible."""
    return json.dumps(text, ensure_ascii=False)


class SerialError(LedgerError, ValueError):
    """A serial that cannot be accepted; the message says why and what is allowed."""


def serial_key(serial: str) -> str:
    """The normalised key of a serial: NFKC, trimmed, upper-cased."""
    return unicodedata.normalize("NFKC", serial).strip().upper()


def check_serial(serial: str) -> str:
    """Return the serial's key, or raise SerialError quoting the bad value."""
    if serial.isascii():
        key = serial.strip().upper()
        if _PLAIN_KEY.fullmatch(key):
            return key
    key = serial_key(serial)
    if not key:
        raise SerialError(f"serial {quoted(serial)} is empty")
    if len(key) > MAX_SERIAL_LENGTH:
        raise SerialError(
            f"serial {quoted(serial[:20])}… is {len(key)} characters;"
            f" the most is {MAX_SERIAL_LENGTH}"
        )
    for ch in key:
        if ch.isalnum() or ch in _ALLOWED_PUNCTUATION:
            continue
        if unicodedata.category(ch)[0] == "C":
            what = f"a control character (U+{ord(ch):04X})"
        elif ch.isspace():
            what = "a space"
        else:
            what = f"the character {ch!r}"
        raise SerialError(
            f"serial {quoted(serial)} has {what}; serials are letters, digits and - _ . / : only"
        )
    return key


MAX_RULE_LENGTH = 200
_RULE_OPTIONS = re2.Options()
_RULE_OPTIONS.log_errors = False  # refusals are reported by SerialError, not on stderr
_RULE_OPTIONS.never_capture = True
_RULE_OPTIONS.max_mem = 1 << 20  # a rule is small; a huge repetition is refused instead
_WHOLE = _re2.RE2.Anchor.ANCHOR_BOTH


class SerialRule:
    """A product's serial format rule, compiled for RE2 (linear-time matching)."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._regexp = _re2.RE2(pattern.encode(), _RULE_OPTIONS)
        if not self._regexp.ok():
            raise SerialError(
                f"serial rule {quoted(pattern)} cannot be used: "
                f"{self._regexp.error().decode(errors='replace')} (rules are regular "
                "expressions without back-references or look-arounds)"
            )

    def fullmatch(self, key: str) -> bool:
        """Whether the whole key matches the rule."""
        data = key.encode()
        start: int = self._regexp.Match(_WHOLE, data, 0, len(data))[0][0]
        return start != -1


def compile_serial_rule(pattern: str) -> SerialRule:
    """Compile a product's serial format rule (a regular expression over the key);
    SerialError says why one cannot be used."""
    if not isinstance(pattern, str) or not pattern.strip():
        raise SerialError(f"serial rule {quoted(str(pattern))} is empty")
    if len(pattern) > MAX_RULE_LENGTH:
        raise SerialError(
            f"serial rule {quoted(pattern[:40])}… is {len(pattern)} characters;"
            f" the most is {MAX_RULE_LENGTH}"
        )
    if any(unicodedata.category(ch) == "Cc" for ch in pattern):
        raise SerialError(f"serial rule {quoted(pattern)} has a control character")
    return SerialRule(pattern)


def check_serial_rule(key: str, rule: SerialRule | None, product: str) -> None:
    """Raise SerialError when the key does not match the product's format rule."""
    if rule is not None and not rule.fullmatch(key):
        raise SerialError(
            f"serial {quoted(key)} does not match the format of {product} ({rule.pattern})"
        )


def serial_prefix(key: str, length: int) -> str:
    """The prefix under which a unit is counted on the dashboard."""
    return key[:length]
