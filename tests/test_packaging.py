"""How posd is installed: a terminal's dependencies apart from HQ's, compatible ranges
in pyproject.toml, exact versions in constraints.txt, and a terminal install that
works without HQ's part (and says how to add it)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from daemon.cli.exits import ExitStatus

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def requirements(group: str | None = None) -> list[Requirement]:
    texts = PROJECT["dependencies"] if group is None else PROJECT["optional-dependencies"][group]
    return [Requirement(text) for text in texts]


def pins() -> dict[str, str]:
    found = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin"
            found[canonicalize_name(name)] = version
    return found


def test_postgresql_and_the_dashboard_are_hq_only() -> None:
    terminal = {canonicalize_name(r.name) for r in requirements()}
    hq = {canonicalize_name(r.name) for r in requirements("hq")}
    assert {"psycopg", "jinja2"} <= hq
    assert not terminal & {"psycopg", "psycopg-binary", "jinja2"}


@pytest.mark.parametrize("group", [None, "hq", "test"])
def test_dependencies_are_ranges_and_constraints_pin_a_version_inside_each(
    group: str | None,
) -> None:
    pinned = pins()
    for requirement in requirements(group):
        operators = {spec.operator for spec in requirement.specifier}
        assert operators == {">=", "<"}, f"{requirement} is not a compatible range"
        version = pinned.get(canonicalize_name(requirement.name))
        assert version is not None, f"constraints.txt does not pin {requirement.name}"
        assert requirement.specifier.contains(version, prereleases=True), (requirement, version)


def _posd_without_hq(*args: str) -> subprocess.CompletedProcess[str]:
    """`posd ARGS` as on a terminal installed without `[hq]` (psycopg, jinja2 absent)."""
    program = (
        "import sys\n"
        "for name in ('psycopg', 'jinja2'):\n"
        "    sys.modules[name] = None  # as if not installed\n"
        "from daemon.cli import main\n"
        "sys.argv = ['posd', *sys.argv[1:]]\n"
        "main()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", program, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_a_terminal_without_hq_runs_its_lane_and_says_how_to_add_hq(tmp_path: Path) -> None:
    lane = _posd_without_hq("demo")
    assert lane.returncode == 0, lane.stdout + lane.stderr
    assert "the lane did everything the story expects" in lane.stdout
    for args in (
        ("hq", "--pg", "host=127.0.0.1", "status"),
        ("hq", "--db", str(tmp_path / "hq.db"), "web", "--listen", "127.0.0.1:0"),
    ):
        result = _posd_without_hq(*args)
        assert result.returncode == ExitStatus.UNAVAILABLE, result.stderr
        assert "Traceback" not in result.stderr
        assert "pip install -c constraints.txt 'posd[hq]'" in result.stderr
