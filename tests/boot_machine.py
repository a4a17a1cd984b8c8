"""A Debian root file system booted under systemd-nspawn, for the boot tests.

    root = cached_root(["python3", ...])          # debootstrap once, then reused
    machine = Machine(root, "posd-boot", binds={"/dev/pts/3": "/dev/posd-scanner"})
    machine.boot()                                # systemd as PID 1, the host's network
    machine.run("systemctl", "start", "posd")     # a command inside, as root
    machine.show("posd", "ActiveState")           # {"ActiveState": "active"}
    machine.stop()

The root is made by debootstrap from the same Debian mirror and release this machine
uses, kept in /var/cache/posd-tests (or `POSD_BOOT_CACHE`) under a name keyed by the
release, mirror, architecture and package list, and reused by every later run. A
machine boots on it with `--volatile=overlay`: what the tests change lives in memory
and is gone when the machine stops, so the cached root stays as debootstrap left it.

The container shares the host's network (a posd inside and an HQ outside meet on
loopback). systemd inside gets the unified cgroup hierarchy and the bpf() call, so
`DevicePolicy=`/`DeviceAllow=` are enforced as on a terminal; nothing is registered
with a machine manager (the host may have no D-Bus).
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(os.environ.get("POSD_BOOT_CACHE", "/var/cache/posd-tests"))
# What the root has besides the package's own dependencies: an init, a system bus and
# udev as on a terminal.
BASE_PACKAGES = ("systemd", "systemd-sysv", "dbus", "udev")
_COMPLETE = ".posd-root-complete"
_INSIDE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def missing_tools() -> str | None:
    """Why this machine cannot run the boot tests, or None when it can."""
    if os.geteuid() != 0:
        return "the boot tests need root (debootstrap, systemd-nspawn)"
    for tool, package in (
        ("debootstrap", "debootstrap"),
        ("systemd-nspawn", "systemd-container"),
        ("nsenter", "util-linux"),
        ("dpkg-deb", "dpkg"),
    ):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian package {package})"
    return None


@dataclass(frozen=True)
class Mirror:
    """Where debootstrap fetches from: this machine's own Debian mirror and release."""

    url: str
    suite: str

    @classmethod
    def of_this_machine(cls, etc: Path = Path("/etc")) -> Mirror:
        """The first enabled `deb` source for this machine's release (`etc`: another
        system's /etc)."""
        release = _os_release(etc).get("VERSION_CODENAME", "")
        if not release:
            raise RuntimeError(f"{etc}/os-release names no VERSION_CODENAME")
        for types, uris, suites in _apt_sources(etc):
            if "deb" in types and release in suites and uris:
                return cls(uris[0].rstrip("/"), release)
        raise RuntimeError(f"no apt source for {release} in {etc}/apt/sources.list*")


def _os_release(etc: Path) -> dict[str, str]:
    values = {}
    for line in (etc / "os-release").read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key] = value.strip().strip('"')
    return values


def _apt_sources(etc: Path) -> Iterable[tuple[list[str], list[str], list[str]]]:
    """(types, URIs, suites) of every enabled apt source, deb822 and one-line."""
    for path in sorted(glob.glob(f"{etc}/apt/sources.list.d/*.sources")):
        for stanza in re.split(r"\n\s*\n", Path(path).read_text(encoding="utf-8")):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                key, sep, value = line.partition(":")
                if sep and not line.startswith(("#", " ")):
                    fields[key.strip().lower()] = value.strip()
            if fields.get("enabled", "yes").lower() == "no":
                continue
            yield (
                fields.get("types", "").split(),
                fields.get("uris", "").split(),
                fields.get("suites", "").split(),
            )
    lists = [f"{etc}/apt/sources.list", *sorted(glob.glob(f"{etc}/apt/sources.list.d/*.list"))]
    for path in lists:
        if not os.path.exists(path):
            continue
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            words = re.sub(r"\[[^]]*\]", "", line.split("#")[0]).split()
            if len(words) >= 3:
                yield [words[0]], [words[1]], [words[2]]


def debian_architecture() -> str:
    return subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()


def cached_root(packages: Iterable[str], *, mirror: Mirror | None = None) -> Path:
    """A debootstrapped root with `packages`, built once and reused while the release,
    mirror, architecture and package list stay the same."""
    mirror = mirror or Mirror.of_this_machine()
    arch = debian_architecture()
    wanted = sorted({*BASE_PACKAGES, *packages})
    recipe = {"suite": mirror.suite, "mirror": mirror.url, "arch": arch, "packages": wanted}
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    target = CACHE / f"rootfs-{mirror.suite}-{arch}-{key}"
    if (target / _COMPLETE).exists():
        (target / _COMPLETE).touch()  # in use: kept by _prune
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run may be building the same root
        if (target / _COMPLETE).exists():
            return target
        staging = CACHE / f".building-{key}"
        if staging.exists():
            shutil.rmtree(staging)
        log = CACHE / f"rootfs-{mirror.suite}-{arch}-{key}.log"
        with log.open("w") as out:
            built = subprocess.run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    f"--include={','.join(wanted)}",
                    mirror.suite,
                    str(staging),
                    mirror.url,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if built.returncode != 0:
            raise RuntimeError(f"debootstrap failed ({built.returncode}); see {log}")
        for deb in (staging / "var/cache/apt/archives").glob("*.deb"):
            deb.unlink()
        (staging / "etc/hostname").write_text("posd-terminal\n")
        (staging / "etc/machine-id").write_text("")  # a new id at each boot
        (staging / _COMPLETE).write_text(json.dumps(recipe, indent=2) + "\n")
        staging.rename(target)
        _prune(keep=target)
    return target


def _prune(keep: Path, unused_days: float = 14.0) -> None:
    """Delete cached roots no run has used for `unused_days` (their package list
    changed); each is a few hundred megabytes."""
    cutoff = time.time() - unused_days * 86400
    for root in CACHE.glob("rootfs-*"):
        marker = root / _COMPLETE
        if root != keep and root.is_dir() and marker.exists() and marker.stat().st_mtime < cutoff:
            shutil.rmtree(root, ignore_errors=True)
            Path(f"{root}.log").unlink(missing_ok=True)


class Machine:
    """One boot of `root` under systemd-nspawn, with host paths bound in."""

    def __init__(
        self,
        root: Path,
        name: str,
        *,
        binds: Mapping[str, str] | None = None,
        read_only_binds: Mapping[str, str] | None = None,
        console_log: Path,
    ) -> None:
        self.root = root
        self.name = name
        self.binds = dict(binds or {})
        self.read_only_binds = dict(read_only_binds or {})
        self.console_log = console_log
        self._nspawn: subprocess.Popen[bytes] | None = None
        self.leader = 0

    def boot(self, timeout_s: float = 90.0) -> None:
        """Start the machine and wait until systemd has finished booting it."""
        command = [
            "systemd-nspawn",
            "--quiet",
            "--boot",
            "--register=no",
            "--keep-unit",
            f"--directory={self.root}",
            "--volatile=overlay",
            f"--machine={self.name}",
            # systemd inside applies DeviceAllow= through BPF device programs.
            "--system-call-filter=bpf",
        ]
        command += [f"--bind={host}:{inside}" for host, inside in self.binds.items()]
        command += [f"--bind-ro={host}:{inside}" for host, inside in self.read_only_binds.items()]
        env = dict(os.environ, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY="1")
        with self.console_log.open("wb") as console:
            self._nspawn = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=console, stderr=console, env=env
            )
        deadline = time.monotonic() + timeout_s
        while not self.leader:
            if self._nspawn.poll() is not None:
                raise RuntimeError(f"systemd-nspawn exited; see {self.console_log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no init in the machine after {timeout_s:.0f} s")
            self.leader = _init_child(self._nspawn.pid)
            time.sleep(0.05)
        while True:
            state = self.run(
                "systemctl", "is-system-running", "--wait", check=False, timeout=timeout_s
            ).stdout.strip()
            if state in ("running", "degraded"):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the machine did not finish booting: {state!r}")
            time.sleep(0.2)

    def run(
        self,
        *command: str,
        check: bool = True,
        timeout: float = 120.0,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run `command` inside the machine as root; stdout and stderr as text."""
        if not self.leader:
            raise RuntimeError("the machine is not running")
        inside_env = {"PATH": _INSIDE_PATH, "LANG": "C.UTF-8", "HOME": "/root", "TERM": "dumb"}
        inside_env.update(env or {})
        enter = [f"--target={self.leader}", "--mount", "--uts", "--ipc", "--pid"]
        variables = [f"{k}={v}" for k, v in inside_env.items()]
        result = subprocess.run(
            ["nsenter", *enter, "--", "env", "-i", *variables, *command],
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(command)} exited {result.returncode} in the machine:\n"
                f"{result.stdout}{result.stderr}"
            )
        return result

    def path(self, inside: str) -> Path:
        """A path inside the running machine, as the host reaches it."""
        return Path(f"/proc/{self.leader}/root") / inside.lstrip("/")

    def show(self, unit: str, *properties: str) -> dict[str, str]:
        """`systemctl show` of `unit`'s `properties`."""
        out = self.run("systemctl", "show", unit, *(f"--property={p}" for p in properties))
        return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)

    def journal(self, *arguments: str) -> list[dict[str, object]]:
        """Journal entries as `journalctl -o json` gives them."""
        out = self.run("journalctl", "--no-pager", "-o", "json", *arguments)
        return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]

    def stop(self, timeout_s: float = 30.0) -> None:
        """Shut the machine down (SIGTERM makes nspawn ask systemd to power off)."""
        if self._nspawn is None:
            return
        if self._nspawn.poll() is None:
            self._nspawn.send_signal(signal.SIGTERM)
            try:
                self._nspawn.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._nspawn.kill()
                self._nspawn.wait()
        self._nspawn = None
        self.leader = 0


def _init_child(nspawn_pid: int) -> int:
    """The machine's PID 1 as the host sees it: nspawn's child running systemd."""
    for children in glob.glob(f"/proc/{nspawn_pid}/task/*/children"):
        try:
            pids = Path(children).read_text().split()
        except OSError:
            continue
        for pid in pids:
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                    return int(pid)
            except OSError:
                continue
    return 0
