"""Starting the lane leaves no temporary folder behind, and after the first start
python-escpos's capability database is read from a pickle in the state directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# Fails if python-escpos parses its YAML database (it would on every start without
# the pickle), then loads it as the lane does.
_START = """
import sys
from pathlib import Path
if sys.argv[2] == "no-yaml":
    import yaml
    def refuse(*args, **kwargs):
        raise SystemExit("parsed the capability YAML again")
    yaml.safe_load = refuse
from daemon.drivers.escpos_setup import load_escpos
load_escpos(Path(sys.argv[1]))
import escpos.printer
"""


def _start(state: Path, tmp: Path, mode: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESCPOS_")}
    env.pop("STATE_DIRECTORY", None)
    return subprocess.run(
        [sys.executable, "-c", _START, str(state), mode],
        env=dict(env, TMPDIR=str(tmp)),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_starts_leave_no_temporary_folders_and_parse_the_yaml_once(tmp_path: Path) -> None:
    state, tmp = tmp_path / "state", tmp_path / "tmp"
    state.mkdir()
    tmp.mkdir()
    first = _start(state, tmp, "first")
    assert first.returncode == 0, first.stderr
    second = _start(state, tmp, "no-yaml")
    assert second.returncode == 0, second.stderr
    assert list(tmp.iterdir()) == []
    assert [p.name.endswith(".capabilities.pickle") for p in (state / "escpos").iterdir()] == [True]


def test_a_state_folder_it_cannot_use_still_starts(tmp_path: Path) -> None:
    state, tmp = tmp_path / "state", tmp_path / "tmp"
    state.write_text("a file where the folder should be")
    tmp.mkdir()
    started = _start(state, tmp, "first")
    assert started.returncode == 0, started.stderr


def test_a_pickle_cut_short_is_read_again_from_the_yaml(tmp_path: Path) -> None:
    """A power cut or a full disk while the pickle was written leaves a stub that would
    stop every later start; it is dropped and the capabilities read from the YAML."""
    state, tmp = tmp_path / "state", tmp_path / "tmp"
    state.mkdir()
    tmp.mkdir()
    assert _start(state, tmp, "first").returncode == 0
    [pickled] = list((state / "escpos").iterdir())
    pickled.write_bytes(pickled.read_bytes()[:40])
    again = _start(state, tmp, "first")
    assert again.returncode == 0, again.stderr
    assert "Traceback" not in again.stderr
