"""The README runs as written: every shell block, top to bottom, in a fresh directory.

A block the README marks `<!-- not run: why -->` (it needs a terminal's devices, root,
a network, or runs until stopped) is not run, and is counted: a new one fails here
until it is added to NOT_RUN, so no block is skipped without anyone noticing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
_FENCE = re.compile(r"^```(\w*)\s*$")
_NOT_RUN = re.compile(r"^<!-- not run: (.+?) -->\s*$")
SHELLS = ("sh", "bash", "shell", "console")

# The first command of each block the README says not to run, in README order.
NOT_RUN = [
    "python3 bootstrap.py lane",
    "posd demo --screen",
    "python3 systemd/build_deb.py",
    "python3 -m venv venv && venv/bin/pip install -c constraints.txt .",
    "posd hq --db /var/lib/posd/hq.db run --broker mqtts://mqtt.example.com:8883",
    "posd hq --db hq.db web --listen 127.0.0.1:8080",
    "POSD_HIL_SCANNER=/dev/input/by-id/usb-…-event-kbd POSD_HIL_LAYOUT=de \\",
]


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence
    language: str
    text: str
    not_run: str | None  # why, when the README says not to run it

    @property
    def first_command(self) -> str:
        return next(line for line in self.text.splitlines() if line.strip()).split("  #")[0]


def blocks(markdown: str) -> list[Block]:
    """Every fenced block, with the `not run` note on the line just above it."""
    found = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        note = _NOT_RUN.match(lines[i - 1]) if i > 0 else None
        found.append(
            Block(i + 1, opening[1], "\n".join(lines[i + 1 : end]), note[1] if note else None)
        )
        i = end + 1
    return found


def shell_blocks() -> list[Block]:
    return [b for b in blocks(README.read_text(encoding="utf-8")) if b.language in SHELLS]


def test_every_block_says_its_language_and_every_note_is_on_a_shell_block() -> None:
    text = README.read_text(encoding="utf-8")
    assert all(b.language for b in blocks(text)), "a ``` block without a language"
    notes = sum(1 for line in text.splitlines() if _NOT_RUN.match(line))
    assert notes == sum(1 for b in shell_blocks() if b.not_run), "a not-run note on no block"


def test_the_blocks_not_run_are_the_ones_known() -> None:
    assert [b.first_command.rstrip() for b in shell_blocks() if b.not_run] == [
        c.rstrip() for c in NOT_RUN
    ]
    assert len([b for b in shell_blocks() if not b.not_run]) >= 5


def _script(runnable: list[Block]) -> str:
    """One script, as a reader types the blocks into one shell: what one block exports
    the next one sees. Each block announces itself so a failure names it."""
    parts = ["set -eu"]
    for block in runnable:
        parts.append(f"echo '### README.md line {block.line}' >&2")
        parts.append(f"echo '### README.md line {block.line}'")
        parts.append(block.text)
    return "\n".join(parts) + "\n"


@pytest.mark.slow
def test_the_readme_runs_top_to_bottom_in_a_fresh_directory(tmp_path: Path) -> None:
    runnable = [b for b in shell_blocks() if not b.not_run]
    script = tmp_path / "readme.sh"
    script.write_text(_script(runnable), encoding="utf-8")
    work = tmp_path / "fresh"
    work.mkdir()
    bin_dir = Path(sys.executable).parent  # the venv's, where `posd` is
    env = {
        "PATH": f"{bin_dir}{os.pathsep}/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "POSD_ACTOR": "clerk",
    }
    result = subprocess.run(
        ["bash", str(script)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    failed_in = re.findall(r"### (README.md line \d+)", result.stderr)
    assert result.returncode == 0, (
        f"{failed_in[-1] if failed_in else 'README'} failed (exit {result.returncode}):\n"
        + result.stdout[-3000:]
        + result.stderr[-3000:]
    )
    out = result.stdout
    # What the README says each step shows.
    assert "the lane did everything the story expects" in out  # posd demo
    assert "barcode renderer" not in out + result.stderr  # python-escpos's notes stay out
    assert "(the first 2 units; more match" in out  # --limit says the result is cut
    assert re.search(r"T-001:\d+ [0-9a-f]{8} ", out), "the passport shows terminal:seq and id"
    assert re.search(r"LAP-X1 +LX-5 +in_stock", out), "the search finds the unit in stock"
    assert (
        "imported 1 units from serials.csv (1 purchase orders); 2 rows were imported already" in out
    )
    assert "the projection matches a replay of the log" in out
