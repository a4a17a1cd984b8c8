"""`posd demo`, the README's main job: a simulated lane's day, checked as it goes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import daemon.lane.demo as walkthrough
from daemon.cli import build
from daemon.ledger import Ledger


def test_the_main_job_runs_the_lane_and_shows_the_refusals() -> None:
    posd = Path(sys.executable).with_name("posd")
    command = [str(posd), "demo"] if posd.exists() else [sys.executable, "-m", "daemon.cli"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    # What the customer read on the pole display at each refusal.
    assert "│ALREADY SOLD        │" in out and "[already_sold]" in out
    assert "│WRONG UNIT          │" in out and "[wrong_unit]" in out
    assert "│ATTENDANT CALLED    │" in out and "[quarantined]" in out
    assert "released by Mia (badge)" in out
    # What was printed.
    assert "|   S/N LX-0001" in out and "| TOTAL                              1403.50" in out
    assert "the hash chain is intact" in out


def test_the_walkthrough_fails_when_the_lane_does_something_else(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stock = walkthrough._stock

    def cheaper_laptops(path: Path) -> None:
        stock(path)
        ledger = Ledger.open(path)
        ledger.define_product("LAP-X1", "Laptop X1", actor="office", price_cents=99900)
        ledger.close()

    monkeypatch.setattr(walkthrough, "_stock", cheaper_laptops)
    result = CliRunner().invoke(build(), ["demo", "--keep", str(tmp_path)])
    assert result.exit_code == 1
    assert "expected: the laptop on the display" in result.output
