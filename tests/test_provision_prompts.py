"""`posd provision` asked interactively: each answer is checked at its own prompt.

A session is typed through `CliRunner(input=...)` into the fake terminal of
`test_provision` (a keyboard-mode scanner, a serial scanner and a pole display
attached). A bad answer is said with the daemon's own wording and asked again at once;
the questions before it are not asked again and it never reaches the file.
"""

from __future__ import annotations

import tempfile
import tomllib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from daemon.config.model import load_config
from daemon.config.spelling import spelled
from daemon.provision.inventory import inventory
from daemon.provision.plan import scanner_kind, takes_layout
from daemon.provision.prompts import MODES, QUESTIONS
from daemon.provision.toml import render
from tests.test_provision import SCANNER_BY_ID, SERIAL_SCANNER, build_root, provision
from tests.test_tls_broker import Pki, make_pki

CONFIG = "etc/posd/posd.toml"
PASSWORD = "typed-Secret-1"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return build_root(tmp_path)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def session(pki: Pki, **answers: str) -> list[tuple[str, str]]:
    """(question, answer) for a whole first provisioning of the fake terminal, with
    `answers` replacing the usual ones (a value may hold a bad answer, a newline, then
    the good one)."""
    typed = {
        "terminal": "T-7",
        "branch": "NORTH",
        "store_name": "Kowalski Tools",
        "mode": "self-checkout",
        "attendants": "Mia=BADGE-0042",
        "scanner": SCANNER_BY_ID,
        "layout": "de",
        "display": "",
        "display_model": "",
        "printer": "tcp://192.0.2.10:9100",
        "screen": "n",
        "hq_url": "mqtts://mqtt.example.com:8883",
        "ca_file": str(pki.ca),
        "login": "",
        "username": "",
        "password": PASSWORD,
        "password again": PASSWORD,
        "write": "y",
    } | answers
    return list(typed.items())


def run(runner: CliRunner, root: Path, script: list[tuple[str, str]], *flags: str) -> Result:
    return provision(runner, root, *flags, input="\n".join(a for _, a in script) + "\n")


def prompts(result: Result, question: str) -> int:
    """How many times a question was put."""
    return sum(1 for line in result.output.splitlines() if line.startswith(question))


@pytest.mark.parametrize(
    ("name", "question", "bad", "said"),
    [
        ("terminal", "Terminal id", "T 1", "terminal.id: terminal id 'T 1' must be"),
        ("branch", "Branch", "B" * 65, "terminal.branch: "),
        ("store_name", "Store name", "   ", "every receipt starts with it"),
        ("mode", "Mode", "kiosk", "terminal.mode: must be one of cashier, self_checkout"),
        ("attendants", "Attendant", "Mia", "'Mia': write an attendant as NAME=BADGE"),
        ("attendants", "Attendant", "Mia=B1", "attendants[0].badge: "),
        ("scanner", "Scanner", "/dev/input/event3", "scanners[0].device: '/dev/input/event3'"),
        ("layout", "Keyboard layout", "german", "did you mean `de`?"),
        ("display", "Customer display", "/dev/ttyUSB0", "display.port: '/dev/ttyUSB0'"),
        ("display_model", "Display command set", "epsn", "did you mean `epson`?"),
        ("printer", "Receipt printer", "192.0.2.10", "printer: '192.0.2.10': give"),
        ("hq_url", "HQ broker URL", "192.0.2.10", "url '192.0.2.10' must look like mqtts://"),
        ("ca_file", "CA certificate", "/nowhere/ca.pem", "/nowhere/ca.pem cannot be read"),
        ("password", "Broker password", "   ", "the password typed is empty"),
    ],
)
def test_a_bad_answer_is_said_and_asked_again_at_its_own_prompt(
    root: Path,
    pki: Pki,
    name: str,
    question: str,
    bad: str,
    said: str,
) -> None:
    good = dict(session(pki))[name]
    result = run(CliRunner(), root, session(pki, **{name: f"{bad}\n{good}"}))
    assert result.exit_code == 0, result.output
    assert said in result.output
    # Asked twice: the bad answer, then the good one; every other question once.
    assert prompts(result, question) == 2, result.output
    assert prompts(result, "Terminal id") == (2 if name == "terminal" else 1)
    assert prompts(result, "Receipt printer") == (2 if name == "printer" else 1)
    text = (root / CONFIG).read_text()
    config = load_config(root / CONFIG)
    assert config.terminal.id == "T-7" and config.terminal.store_name == "Kowalski Tools"
    assert config.self_checkout and [a.badge for a in config.attendants] == ["BADGE-0042"]
    assert config.scanners[0].layout == "de"  # type: ignore[union-attr]
    assert config.printer is not None and config.printer.host == "192.0.2.10"  # type: ignore[attr-defined]
    assert "german" not in text and "ttyUSB0" not in text and "event3" not in text
    assert (root / "etc/posd/mqtt-password").read_text() == PASSWORD + "\n"


def test_a_bad_value_given_as_an_option_is_asked_for_again_before_the_others(
    root: Path,
    pki: Pki,
) -> None:
    script = [(q, a) for q, a in session(pki) if q != "printer"]
    script.insert(9, ("printer", "tcp://192.0.2.10:9100"))  # at its own place
    result = run(CliRunner(), root, script, "--printer", "lp0")
    assert result.exit_code == 0, result.output
    assert "Error: --printer 'lp0' cannot be used: printer: 'lp0': give" in result.output
    config = load_config(root / CONFIG)
    assert config.printer is not None and config.printer.host == "192.0.2.10"  # type: ignore[attr-defined]


def test_what_no_question_fixes_is_refused_before_the_first_question(
    root: Path,
) -> None:
    result = provision(CliRunner(), root, "--gpio", "green=x", input="T-7\n")
    assert result.exit_code == 78
    assert "gpio.pins: 'green=x'" in result.output
    assert "Terminal id" not in result.output
    assert not (root / CONFIG).exists()


def test_the_store_name_is_asked_written_and_offered_on_a_rerun(
    root: Path,
    pki: Pki,
) -> None:
    first = run(CliRunner(), root, session(pki, store_name="Kowalski Tools & Garden"))
    assert first.exit_code == 0, first.output
    assert "Store name, as printed at the top of receipts" in first.output
    assert tomllib.loads((root / CONFIG).read_text())["terminal"]["store_name"] == (
        "Kowalski Tools & Garden"
    )
    again = provision(CliRunner(), root, input="\n" * 40)
    assert "Store name, as printed at the top of receipts [Kowalski Tools & Garden]" in (
        again.output
    )


@pytest.mark.parametrize(
    "typed", ["self-checkout", "Self Checkout", "SELF_CHECKOUT", "selfcheckout"]
)
def test_the_ways_people_write_self_checkout_are_taken(
    root: Path,
    pki: Pki,
    typed: str,
) -> None:
    result = run(CliRunner(), root, session(pki, mode=typed))
    assert result.exit_code == 0, result.output
    assert "Error" not in result.output
    assert load_config(root / CONFIG).terminal.mode == "self_checkout"


def test_self_checkout_is_taken_as_an_option_too(root: Path) -> None:
    result = provision(CliRunner(), root, "--terminal", "T1", "--branch", "B1",
                       "--mode", "self-checkout", "--attendant", "Mia=BADGE-0042",
                       "--yes")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert load_config(root / CONFIG).terminal.mode == "self_checkout"


def test_the_scanner_offered_is_the_one_posd_devices_marks(
    root: Path,
    pki: Pki,
) -> None:
    marked = [d.name for d in inventory(root).scanners() if d.scanner == "likely"]
    assert marked == [SCANNER_BY_ID, SERIAL_SCANNER]
    result = run(CliRunner(), root, session(pki, scanner=""))  # Enter takes the default
    assert result.exit_code == 0, result.output
    assert f"Scanner (a name listed above, vendor:product, or none) [{SCANNER_BY_ID}]" in (
        result.output
    )
    assert load_config(root / CONFIG).scanners[0].device == SCANNER_BY_ID  # type: ignore[union-attr]


def test_with_yes_the_scanner_is_the_one_clearly_attached(tmp_path: Path) -> None:
    root = build_root(tmp_path)
    (root / SERIAL_SCANNER.lstrip("/")).unlink()  # now one device is clearly the scanner
    result = provision(CliRunner(), root, "--terminal", "T1", "--branch", "B1", "--yes")
    assert result.exit_code == 0, result.output
    assert load_config(root / CONFIG).scanners[0].device == SCANNER_BY_ID  # type: ignore[union-attr]


def test_a_layout_that_does_not_compile_is_refused_with_the_nearest_one(
    root: Path,
) -> None:
    result = provision(CliRunner(), root, "--terminal", "T1", "--branch", "B1",
                       "--scanner", SCANNER_BY_ID, "--layout", "german", "--yes")  # fmt: skip
    assert result.exit_code == 78
    assert "scanners[0].layout: keyboard layout 'german' could not be compiled" in result.output
    assert "did you mean `de`?" in result.output
    assert not (root / CONFIG).exists()


# ------------------------------------------------------------ any answer at all

# What to type at each question that shapes a session without a broker.
_QUIET = {"mode": "", "hq_url": "none"}
_FUZZED = ("terminal", "branch", "store_name", "mode", "scanner", "layout", "display",
           "display_model", "printer", "hq_url")  # fmt: skip
_TYPED = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
                 max_size=40)  # fmt: skip


def _questions(pki: Pki, root: Path, name: str, answer: str) -> list[tuple[str, str]]:
    """The session that follows from typing `answer` to question `name` (taken as it
    is): which questions come depends on the mode, the scanner, the display, the broker."""
    script = dict(session(pki, **_QUIET))
    script[name] = answer
    mode = spelled(script["mode"].strip(), MODES) if script["mode"] else "cashier"
    if mode != "self_checkout":
        del script["attendants"]
    scanner = script["scanner"].strip() or SCANNER_BY_ID
    if not takes_layout(scanner_kind(scanner, None, root)):
        del script["layout"]
    if script["display"].strip() == "none":
        del script["display_model"]
    if script["hq_url"].strip() == "none":
        for question in ("ca_file", "login", "username", "password", "password again"):
            del script[question]
    else:
        script["ca_file"] = ""
    return list(script.items())


_BASELINE: dict[str, str] = {}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(_FUZZED), typed=_TYPED)
@example(name="terminal", typed="\x0c")  # only blank: no terminal id at all
@example(name="branch", typed=" \t ")
@example(name="printer", typed="192.0.2.10")
def test_any_answer_is_taken_as_a_terminal_that_starts_or_asked_again(
    pki: Pki,
    name: str,
    typed: str,
) -> None:
    question = QUESTIONS[name]
    with tempfile.TemporaryDirectory() as folder:
        if not _BASELINE:
            plain = build_root(Path(folder) / "plain")
            result = run(CliRunner(), plain, _questions(pki, plain, "mode", ""))
            assert result.exit_code == 0, result.output
            _BASELINE["text"] = (plain / CONFIG).read_text()
        alone = build_root(Path(folder) / "alone")
        result = run(CliRunner(), alone, _questions(pki, alone, name, typed))
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        if prompts(result, question) == 1:  # taken: the file is a terminal that starts
            assert result.exit_code == 0, result.output
            load_config(alone / CONFIG)
            return
        # Asked again: the good answer next, and the file is as if the bad one was never
        # typed.
        root = build_root(Path(folder) / "again")
        good = dict(session(pki, **_QUIET))[name]
        result = run(CliRunner(), root, _questions(pki, root, name, f"{typed}\n{good}"))
        assert result.exit_code == 0, result.output
        assert prompts(result, question) == 2, result.output
        assert (root / CONFIG).read_text() == _BASELINE["text"]


_VALUES = st.recursive(
    st.one_of(st.text(max_size=20), st.integers(), st.booleans(), st.floats(allow_nan=False)),
    lambda inner: st.lists(inner, max_size=3),
    max_leaves=5,
)
# Keys are posd's own names or ones read from the file before; values are anything typed.
_KEYS = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=8)
_TABLES = st.dictionaries(_KEYS, st.dictionaries(_KEYS, _VALUES, max_size=4), max_size=4)


@settings(max_examples=150, deadline=None)
@given(first=_TABLES, second=_TABLES)
def test_any_settings_are_written_as_toml_that_reads_back_as_they_are(
    first: dict[str, Any], second: dict[str, Any]
) -> None:
    """New, or edited from the file before: the text reads back (with Python's own TOML
    reader) as exactly the settings, control characters and all."""
    text = render(first, "posd.toml")
    assert tomllib.loads(text) == first
    edited = render(second, "posd.toml", text)
    assert tomllib.loads(edited) == second
