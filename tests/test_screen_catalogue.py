"""The lane screen's words: one catalogue per language, English the source of truth.

Every key the page looks up (in its HTML, in its script, and by the lane's codes: each
refusal, each mode, each restart notice) is in English; every English key is in every
other catalogue, translated, with the same placeholders.
"""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from pathlib import Path
from typing import get_args

import pytest

from daemon.config.screen import LANGUAGES, PracticeItemConfig
from daemon.lane.screen.web import STATIC
from daemon.rules.lane.text import REFUSALS
from daemon.rules.lane.types import Mode
from daemon.rules.units import Flag, State

I18N = STATIC / "i18n"
PLACEHOLDER = re.compile(r"\{(\w+)\}")
# The same word in both languages, on purpose.
SAME_IN_EVERY_LANGUAGE = {"button.ok"}


def _catalogue(language: str) -> dict[str, str]:
    return dict(json.loads((I18N / f"{language}.json").read_text(encoding="utf-8")))


ENGLISH = _catalogue("en")


def _keys_in_the_page() -> set[str]:
    """Every key written out in the page: its HTML's data-i18n attributes and every
    dotted key quoted in its script."""
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    script = (STATIC / "screen.js").read_text(encoding="utf-8")
    keys = set(re.findall(r'data-i18n(?:-alt|-label)?="([^"]+)"', html))
    keys |= set(re.findall(r'"([a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+)"(?!\s*\+)', script))
    return keys


def _prefixes_in_the_script() -> set[str]:
    """Keys the script builds from a code: `t("verdict." + code)`."""
    script = (STATIC / "screen.js").read_text(encoding="utf-8")
    return set(re.findall(r'"([a-z0-9_.]+[._])"\s*\+', script))


def _codes_the_lane_refuses_with() -> set[str]:
    units = {state.value for state in State} - {"in_stock", "sold"}
    return set(REFUSALS) | units | {f"flag_{flag.value}" for flag in Flag}


def test_there_is_a_catalogue_for_every_language_the_configuration_offers() -> None:
    assert sorted(p.stem for p in I18N.glob("*.json")) == sorted(LANGUAGES)


def test_every_key_the_page_looks_up_is_in_the_english_catalogue() -> None:
    static = _keys_in_the_page()
    assert len(static) > 60  # the extraction found the page's keys
    dynamic = {f"mode.{mode.value}" for mode in Mode}
    dynamic |= {f"verdict.{code}" for code in _codes_the_lane_refuses_with()}
    dynamic |= {"notice.last_sale_saved", "notice.last_sale_lost", "verdict.unknown"}
    dynamic |= {f"practice.kind.{kind}" for kind in get_args(_kinds())}
    dynamic |= {"basket.count_one", "basket.count_other", "lang.name"}
    missing = sorted((static | dynamic) - ENGLISH.keys())
    assert not missing, missing
    # Each key the script builds is one of those checked above.
    built = {"mode.", "verdict.", "notice.", "practice.kind.", "basket.count_"}
    assert _prefixes_in_the_script() == built, _prefixes_in_the_script() ^ built


def test_every_english_string_is_shown_somewhere() -> None:
    """No dead words: each key is written out in the page or built from a prefix the
    script uses (a verdict, a mode, …)."""
    prefixes = (*_prefixes_in_the_script(), "lang.")
    unused = sorted(
        k for k in ENGLISH if k not in _keys_in_the_page() and not k.startswith(prefixes)
    )
    assert not unused, unused


def _kinds() -> object:
    return PracticeItemConfig.model_fields["kind"].annotation


@pytest.mark.parametrize("language", [lang for lang in LANGUAGES if lang != "en"])
def test_every_customer_string_is_translated(language: str) -> None:
    other = _catalogue(language)
    assert sorted(ENGLISH.keys() - other.keys()) == [], "missing in " + language
    assert sorted(other.keys() - ENGLISH.keys()) == [], "not in English (the source)"
    for key, english in ENGLISH.items():
        assert other[key].strip(), f"{language}: {key} is empty"
        assert set(PLACEHOLDER.findall(other[key])) == set(PLACEHOLDER.findall(english)), key
        if key not in SAME_IN_EVERY_LANGUAGE:
            assert other[key] != english, f"{language}: {key} is still English: {english!r}"


def test_refusals_read_to_a_customer_without_accusing_them() -> None:
    for language in LANGUAGES:
        words = _catalogue(language)
        for code in _codes_the_lane_refuses_with():
            text = words[f"verdict.{code}"].lower()
            for accusation in ("stolen", "theft", "fraud", "gestohlen", "diebstahl", "betrug"):
                assert accusation not in text, (language, code, text)


def test_every_file_of_the_page_is_installed_with_the_package() -> None:
    pyproject = tomllib.loads((STATIC.parents[3] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["daemon.lane.screen"]
    files = [p.relative_to(STATIC.parent).as_posix() for p in STATIC.rglob("*") if p.is_file()]
    assert len(files) >= 10
    left_out = [f for f in files if not any(fnmatch.fnmatchcase(f, p) for p in patterns)]
    assert not left_out, f"add these to pyproject.toml's package-data: {left_out}"


def test_the_catalogues_are_plain_json_a_browser_reads_as_is() -> None:
    for path in I18N.glob("*.json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        assert isinstance(data, dict)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()), path


def test_the_page_has_nothing_inline_and_asks_nothing_from_outside() -> None:
    """The Content-Security-Policy would block inline code; none is written."""
    for path in Path(STATIC).rglob("*"):
        if path.suffix not in (".html", ".js", ".css", ".svg"):
            continue
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), path
        if path.suffix in (".html", ".svg"):
            assert not re.search(r"<script(?![^>]*\bsrc=)", text), path
            assert not re.search(r"\son[a-z]+=", text), path  # onclick=… and the like
            assert "style=" not in text and "<style" not in text, path
    script = (STATIC / "screen.js").read_text(encoding="utf-8")
    assert "innerHTML" not in script and "eval(" not in script
