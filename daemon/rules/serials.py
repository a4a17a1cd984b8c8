"""Serial numbers: the key uniqueness is judged on, and what a serial may contain.

A serial is stored exactly as the supplier printed it. Uniqueness and look-up use
its key: Unicode NFKC, trimmed, upper-cased, so a full-width serial scanned from one
label and the same serial typed in lower case by hand find the same unit.
"""

from __future__ import annotations

import json
import re
import unicodedata

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


def compile_serial_rule(pattern: str) -> re.Pattern[str]:
    """Compile a product's serial format rule (a regular expression over the key)."""
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise SerialError(f"serial rule {pattern!r} is not a valid pattern: {exc}") from None


def check_serial_rule(key: str, rule: re.Pattern[str] | None, product: str) -> None:
    """Raise SerialError when the key does not match the product's format rule."""
    if rule is not None and rule.fullmatch(key) is None:
        raise SerialError(
            f"serial {quoted(key)} does not match the format of {product} ({rule.pattern})"
        )


def serial_prefix(key: str, length: int) -> str:
    """The prefix under which a unit is counted on the dashboard."""
    return key[:length]
