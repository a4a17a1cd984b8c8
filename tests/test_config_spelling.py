"""`posd config check` compiles the keyboard layout and suggests the value meant.

A layout libxkbcommon cannot compile (`german`) is refused when the file is read, not
on the first scan; any value outside a fixed set is refused with the nearest valid
one ("did you mean `de`?"), and a suggestion is only ever one of the valid values.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import tomlkit
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.cli import build
from daemon.config.spelling import did_you_mean, nearest, spelled
from daemon.drivers.keymap import LayoutError, check_layout, known_layouts

SCANNER = "/dev/input/by-id/usb-Honeywell_Imaging-event-kbd"


def settings_with(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "terminal": {"id": "T1", "branch": "B1", "mode": "cashier"},
        "ledger": {"path": "/var/lib/posd/ledger.db"},
        "logging": {"level": "info"},
        "scanners": [{"kind": "evdev", "device": SCANNER, "layout": "us"}],
        "display": {"port": "/dev/posd-display", "model": "epson"},
        "printer": {"transport": "network", "host": "192.0.2.10"},
    }
    for path, value in changes.items():
        table, key = path.split("__")
        target = base[table][0] if isinstance(base[table], list) else base[table]
        target[key] = value
    return base


def check(tmp_path: Path, settings: dict[str, Any]) -> tuple[int, list[str]]:
    path = tmp_path / "posd.toml"
    path.write_text(tomlkit.dumps(settings))
    result = CliRunner().invoke(build(), ["config", "check", "--json", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.stdout).get("problems", [])


def test_a_layout_that_does_not_compile_is_refused_with_the_layout_meant(tmp_path: Path) -> None:
    code, problems = check(tmp_path, settings_with(scanners__layout="german"))
    assert code == 78
    assert problems == [
        "scanners[0].layout: keyboard layout 'german' could not be compiled: did you mean "
        "`de`? Layouts are XKB names such as us, gb, de or fr (`localectl "
        "list-x11-keymap-layouts` lists them)"
    ]
    assert check(tmp_path, settings_with(scanners__layout="de")) == (0, [])


@pytest.mark.parametrize(
    ("typed", "meant"),
    [("german", "de"), ("German", "de"), ("germn", "de"), ("french", "fr"), ("english", "us"),
     ("Swiss", None), ("deu", None), ("DE", "de")],
)  # fmt: skip
def test_the_layout_meant_is_found_by_name_or_by_what_it_is_called(
    typed: str, meant: str | None
) -> None:
    with pytest.raises(LayoutError) as refused:
        check_layout(typed)
    hint = f"did you mean `{meant}`?"
    assert (hint in str(refused.value)) is (meant is not None), str(refused.value)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"terminal__mode": "self-checkout"},
         "terminal.mode: must be one of cashier, self_checkout (got 'self-checkout'); "
         "did you mean `self_checkout`?"),
        ({"display__model": "epsn"},
         "display.model: must be one of epson, cd5220 (got 'epsn'); did you mean `epson`?"),
        ({"logging__level": "warn"}, "did you mean `warning`?"),
        ({"printer__transport": "networks"},
         "printer.transport: must be one of serial, file, network (got 'networks'); "
         "did you mean `network`?"),
        ({"scanners__kind": "Serail"},
         "scanners[0].kind: must be one of evdev, serial (got 'Serail'); "
         "did you mean `serial`?"),
        ({"terminal__mode": "kiosk"}, "(got 'kiosk')"),
    ],
)  # fmt: skip
def test_a_value_outside_its_set_is_refused_with_the_nearest_one(
    tmp_path: Path, change: dict[str, str], problem: str
) -> None:
    code, problems = check(tmp_path, settings_with(**change))
    assert code == 78
    assert any(problem in p for p in problems), problems
    if "kiosk" in problem:  # nothing near: no guess
        assert not any("did you mean" in p for p in problems)


_SETS = {
    "terminal__mode": ("cashier", "self_checkout"),
    "display__model": ("epson", "cd5220"),
    "logging__level": ("debug", "info", "warning", "error", "critical"),
    "printer__transport": ("serial", "file", "network"),
}
_SUGGESTED = re.compile(r"did you mean `([^`]*)`\?")


@settings(max_examples=60, deadline=None)
@given(key=st.sampled_from(sorted(_SETS)), typed=st.text(max_size=20))
def test_any_value_is_taken_or_refused_with_a_valid_suggestion_and_no_traceback(
    tmp_path_factory: pytest.TempPathFactory, key: str, typed: str
) -> None:
    code, problems = check(tmp_path_factory.mktemp("c"), settings_with(**{key: typed}))
    if typed in _SETS[key]:
        assert code == 0
        return
    assert code == 78 and problems
    for suggestion in _SUGGESTED.findall(" ".join(problems)):
        assert suggestion in _SETS[key] or suggestion in ("serial", "file", "network")


@settings(max_examples=100, deadline=None)
@given(typed=st.text(max_size=30))
def test_a_suggestion_is_always_a_valid_value(typed: str) -> None:
    layouts = known_layouts()
    found = nearest(typed, layouts, {"german": "de"})
    assert found is None or found in layouts
    hint = did_you_mean(typed, ("cashier", "self_checkout"))
    assert hint in ("", "did you mean `cashier`?", "did you mean `self_checkout`?")


def test_only_case_spaces_hyphens_and_underscores_are_forgiven_in_an_answer() -> None:
    modes = ("cashier", "self_checkout")
    for typed in ("self-checkout", "Self Checkout", " SELF_CHECKOUT ", "selfcheckout"):
        assert spelled(typed, modes) == "self_checkout"
    for typed in ("self-check", "casheir", "", "self_checkout_2"):
        assert spelled(typed, modes) is None
