"""Attendant and manager PINs: stored only as scrypt hashes, checked in constant time.

    line = hash_pin("4821")              # what goes in the config's pin_hash
    verify_pin("4821", line)             # True

A hash reads `scrypt$N$r$p$salt$digest` (salt and digest in base64), so the cost can be
raised later without breaking the hashes already in configurations.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass

from daemon.errors import ConfigError

_N, _R, _P = 2**14, 8, 1
_DIGEST_BYTES = 32


class PinError(ConfigError):
    """A PIN or PIN hash that cannot be used; the message says what is expected."""


def check_pin(pin: str) -> str:
    if not (pin.isascii() and pin.isdigit() and 4 <= len(pin) <= 12):
        raise PinError("a PIN is 4 to 12 digits")
    return pin


def hash_pin(pin: str, *, salt: bytes | None = None) -> str:
    """The line to store for `pin` (a fresh random salt unless one is given)."""
    check_pin(pin)
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=_DIGEST_BYTES)
    return "$".join(["scrypt", str(_N), str(_R), str(_P), _b64(salt), _b64(digest)])


@dataclass(frozen=True)
class PinHash:
    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes


def parse_pin_hash(text: str) -> PinHash:
    """Read a stored hash; PinError when it is not one `hash_pin` made."""
    parts = text.split("$")
    try:
        if len(parts) != 6 or parts[0] != "scrypt":
            raise ValueError
        n, r, p = (int(x) for x in parts[1:4])
        salt, digest = (
            base64.b64decode(parts[4], validate=True),
            base64.b64decode(parts[5], validate=True),
        )
        if n < 2**10 or n & (n - 1) or not salt or len(digest) < 16:
            raise ValueError
    except ValueError:
        shown = text if len(text) <= 12 else text[:12] + "…"
        raise PinError(
            f"pin_hash {shown!r} is not a PIN hash; make one with `posd config hash-pin` "
            "(plain PINs are never stored)"
        ) from None
    return PinHash(n, r, p, salt, digest)


def verify_pin(pin: str, stored: str) -> bool:
    """Whether `pin` matches the stored hash. Slow on purpose (scrypt): call it off the
    event loop."""
    hashed = parse_pin_hash(stored)
    digest = hashlib.scrypt(
        pin.encode(),
        salt=hashed.salt,
        n=hashed.n,
        r=hashed.r,
        p=hashed.p,
        dklen=len(hashed.digest),
        maxmem=256 * hashed.n * hashed.r,
    )
    return hmac.compare_digest(digest, hashed.digest)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
