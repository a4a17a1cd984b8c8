"""The valid value a person meant: `self-checkout` is `self_checkout`, `germn` is near
`german`, and an error can say "did you mean `de`?".

    spelled("Self-Checkout", ["cashier", "self_checkout"])     # "self_checkout"
    nearest("casheir", ["cashier", "self_checkout"])            # "cashier"
    did_you_mean("german", ["us", "de"], {"german": "de"})      # "did you mean `de`?"

`spelled` only forgives case, spaces, hyphens and underscores, so it may accept an
answer; `nearest` also finds a close misspelling (or a word in `aliases`, such as a
layout's name in English), which is only ever offered as a suggestion, never taken.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping

_SEPARATORS = re.compile(r"[\s_-]+")


def normalised(text: str) -> str:
    """`" Self-Checkout "` -> `"self_checkout"`: case, spaces and hyphens set aside."""
    return _SEPARATORS.sub("_", text.strip().lower()).strip("_")


def spelled(given: str, options: Iterable[str]) -> str | None:
    """The option `given` is a way of writing (`Self Checkout`, `selfcheckout`), or None."""
    key = normalised(given).replace("_", "")
    return next((o for o in options if normalised(o).replace("_", "") == key), None)


def nearest(
    given: object, options: Iterable[str], aliases: Mapping[str, str] | None = None
) -> str | None:
    """The option closest to `given` (by spelling, or through `aliases`: other words for
    an option), or None when nothing is close."""
    if not isinstance(given, str) or not given.strip():
        return None
    choices = {normalised(option): option for option in options}
    for word, option in (aliases or {}).items():
        choices.setdefault(normalised(word), option)
    key = normalised(given)
    if key in choices:
        return choices[key]
    if len(key) < 3:  # one or two letters are near too much to mean anything
        return None
    close = difflib.get_close_matches(key, list(choices), n=1, cutoff=0.6)
    return choices[close[0]] if close else None


def did_you_mean(
    given: object, options: Iterable[str], aliases: Mapping[str, str] | None = None
) -> str:
    """`"did you mean `de`?"` for an error to end with, or "" when nothing is near."""
    found = nearest(given, options, aliases)
    return f"did you mean `{found}`?" if found is not None and found != given else ""
