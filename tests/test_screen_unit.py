"""The kiosk browser's unit (`systemd/posd-screen.service`) and what goes with it: systemd
accepts it; it starts after posd is ready and only once the page answers; it shows the
address posd serves; the browser policy keeps it on that page; and `posd screen url|
wait`, which the unit runs, tell and wait as they say.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from daemon.cli import build
from daemon.config.model import load_config
from simulators.lane import SimulatedLane, to_toml
from tests.lane_sim import run_lane
from tests.screen_browser import free_port

SYSTEMD = Path(__file__).resolve().parent.parent / "systemd"
UNIT = SYSTEMD / "posd-screen.service"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def _settings(path: Path = UNIT) -> list[tuple[str, str, str]]:
    """(section, key, value) in order, continuation lines joined."""
    found: list[tuple[str, str, str]] = []
    section = ""
    text = path.read_text(encoding="utf-8").replace("\\\n", " ")
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        found.append((section, key, " ".join(value.split())))
    return found


def _values(section: str, key: str) -> list[str]:
    return [v for s, k, v in _settings() if (s, k) == (section, key)]


def test_the_screen_starts_after_posd_is_ready_and_survives_its_restarts() -> None:
    assert "posd.service" in _values("Unit", "After")
    assert _values("Unit", "Wants") == ["posd.service"]
    assert not _values("Unit", "Requires") and not _values("Unit", "BindsTo")
    (wait,) = _values("Service", "ExecStartPre")
    assert wait.startswith("+/opt/posd/.venv/bin/posd screen wait --config /etc/posd/posd.toml")
    assert _values("Service", "Restart") == ["always"]


def test_the_browser_runs_in_kiosk_mode_under_cage_on_the_page_posd_serves() -> None:
    (start,) = _values("Service", "ExecStart")
    assert start.startswith("/usr/bin/cage ") and " -- /usr/bin/chromium " in start
    assert "--kiosk" in start.split() and start.endswith("${POSD_SCREEN_URL}")
    (url,) = [v for v in _values("Service", "Environment") if v.startswith("POSD_SCREEN_URL=")]
    example = load_config(SYSTEMD / "posd.toml.example")
    assert url == f"POSD_SCREEN_URL=http://127.0.0.1:{example.api.port}/"
    assert _values("Service", "User") == ["posd-screen"]
    assert _values("Service", "PAMName") == ["posd-screen"]
    assert (SYSTEMD / "posd-screen.pam").exists()
    sysusers = (SYSTEMD / "posd-screen.sysusers").read_text(encoding="utf-8")
    assert "u posd-screen " in sysusers and "m posd-screen posd" not in sysusers


def test_the_browser_policy_allows_the_lane_screen_and_nothing_else() -> None:
    policy = json.loads((SYSTEMD / "posd-screen.chromium.json").read_text(encoding="utf-8"))
    assert policy["URLBlocklist"] == ["*"]
    example = load_config(SYSTEMD / "posd.toml.example")
    assert f"http://127.0.0.1:{example.api.port}/*" in policy["URLAllowlist"]
    assert all("127.0.0.1" in u or "localhost" in u or "[::1]" in u for u in policy["URLAllowlist"])
    assert policy["DeveloperToolsAvailability"] == 2


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_the_screen_unit(tmp_path: Path) -> None:
    # verify refuses a unit whose programs are missing: cage, Chromium and the installed
    # posd exist only on a terminal, so the copy points at programs this machine has.
    posd = Path(sys.executable).with_name("posd")
    text = UNIT.read_text(encoding="utf-8")
    text = text.replace("/opt/posd/.venv/bin/posd", str(posd))
    text = text.replace("/usr/bin/cage", "/bin/true")
    copy = tmp_path / "posd-screen.service"
    copy.write_text(text, encoding="utf-8")
    (tmp_path / "posd.service").write_text((SYSTEMD / "posd.service").read_text())
    assert SYSTEMD_ANALYZE is not None
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        # The posd.service copy beside it names a program only a terminal has.
        if "posd.service" not in line or "posd-screen.service" in line
    ]
    assert result.returncode == 0 and problems == [], result.stdout + result.stderr


def test_posd_screen_url_reads_the_address_from_the_configuration(tmp_path: Path) -> None:
    config = tmp_path / "posd.toml"
    sim = SimulatedLane(tmp_path / "lane", api_port=9911, screen={"enabled": False})
    try:
        config.write_text(to_toml(sim.config(gpio=False)), encoding="utf-8")
    finally:
        sim.close()
    result = CliRunner().invoke(build(), ["screen", "url", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"url": "http://127.0.0.1:9911/", "enabled": False}
    waited = CliRunner().invoke(build(), ["screen", "wait", "--config", str(config)])
    assert waited.exit_code == 1 and "screen.enabled is false" in waited.output


def test_posd_screen_wait_returns_once_the_page_answers_and_fails_when_it_never_does(
    tmp_path: Path, template_dir: Path
) -> None:
    port = free_port()
    config = tmp_path / "posd.toml"

    async def play(sim: SimulatedLane) -> None:
        config.write_text(to_toml(sim.config(gpio=False)), encoding="utf-8")
        loop = asyncio.get_running_loop()
        command = ["screen", "wait", "--config", str(config), "--timeout", "10", "--json"]
        result = await loop.run_in_executor(None, lambda: CliRunner().invoke(build(), command))
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["ok"] is True

    run_lane(tmp_path, template_dir, play, api_port=port)
    # The lane has stopped: nothing answers any more.
    command = ["screen", "wait", "--config", str(config), "--timeout", "0.5"]
    result = CliRunner().invoke(build(), command)
    assert result.exit_code == 1 and "did not serve" in result.output
