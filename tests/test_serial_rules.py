"""A product's serial format rule cannot hang a terminal, and a rule that cannot be used
is refused when the product is defined, not on the first scan."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from daemon.ledger import Refusal
from daemon.rules.serials import MAX_SERIAL_LENGTH, SerialError, compile_serial_rule
from tests.ledger_fixtures import make_ledger

# Patterns that make a backtracking engine (Python's re) take exponential time on a
# near-miss, each with a serial it nearly matches.
EVIL = [
    ("(A+)+$", "A" * (MAX_SERIAL_LENGTH - 1) + "B"),
    ("(A|A)*$", "A" * (MAX_SERIAL_LENGTH - 1) + "B"),
    ("(A|AA)+$", "A" * (MAX_SERIAL_LENGTH - 1) + "B"),
    ("([A-Z0-9]+)*-", "X" * MAX_SERIAL_LENGTH),
    ("(A*)*B", "A" * MAX_SERIAL_LENGTH),
]


@pytest.mark.parametrize(("rule", "serial"), EVIL)
def test_a_backtracking_rule_answers_a_near_miss_at_once(rule: str, serial: str) -> None:
    # In a child process with a generous time-out, so a regression fails instead of
    # hanging the suite (Python's re needs about 2**63 steps for the first one).
    script = textwrap.dedent(
        f"""
        from daemon.ledger import Ledger, Refusal
        ledger = Ledger.create(None, terminal="T1", branch="B1")
        ledger.define_product("EVIL", "Evil", actor="ann", serial_rule={rule!r})
        try:
            ledger.receive("PO-1", "Acme", "EVIL", [{serial!r}], actor="ann")
        except Refusal as refused:
            print(refused.code)
        else:
            print("accepted")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "bad_serial"


def test_an_evil_rule_still_matches_what_it_should() -> None:
    rule = compile_serial_rule("(A+)+$")
    assert rule.fullmatch("AAAA")
    assert not rule.fullmatch("AAAB")


@pytest.mark.parametrize(
    ("rule", "says"),
    [
        (r"(A)\1", "back-references"),
        (r"(?=A)A", "look-arounds"),
        ("A{1000}{1000}", "cannot be used"),
        ("(", "missing )"),
        ("", "empty"),
        ("A" * 201, "the most is 200"),
        ("A\nB", "control character"),
    ],
)
def test_a_rule_that_cannot_be_used_is_refused_when_the_product_is_defined(
    rule: str, says: str
) -> None:
    with pytest.raises(SerialError, match=says.replace(")", r"\)")):
        compile_serial_rule(rule)
    ledger = make_ledger()
    with pytest.raises(Refusal) as refused:
        ledger.define_product("BAD", "Bad rule", actor="ann", serial_rule=rule)
    assert refused.value.code in ("bad_rule", "bad_value")
    assert ledger.product("BAD") is None


def test_a_rule_stored_before_rules_were_checked_refuses_its_units_with_the_reason() -> None:
    ledger = make_ledger()
    ledger.define_product("OLD", "Old rule", actor="ann")
    # A ledger from before rules ran on RE2 may hold one that RE2 does not take.
    ledger.db.execute("UPDATE products SET serial_rule = ? WHERE code = 'OLD'", [r"(A)\1"])
    with pytest.raises(Refusal) as refused:
        ledger.receive("PO-1", "Acme", "OLD", ["AA"], actor="ann")
    assert refused.value.code == "bad_rule"
    assert "define the product again" in str(refused.value)


def test_a_rule_is_read_as_the_product_gave_it() -> None:
    rule = compile_serial_rule("SN-[0-9]{6}")
    assert rule.fullmatch("SN-123456")
    assert not rule.fullmatch("SN-12345")
    assert not rule.fullmatch("XSN-123456")  # the whole key, not a part of it
    assert compile_serial_rule("[0-9]{15}").fullmatch("356938035643809")
