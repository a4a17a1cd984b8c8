"""Build posd's Debian package from this checkout: `posd_VERSION_ARCH.deb`.

    python3 systemd/build_deb.py                 # -> build/posd_0.1.0_amd64.deb
    python3 systemd/build_deb.py --out /tmp/deb  # somewhere else
    python3 systemd/build_deb.py --with lgpio    # a Raspberry Pi's GPIO library too

On the terminal, `apt install ./posd_VERSION_ARCH.deb`, then `posd provision`.

The package holds posd in its own virtualenv at /opt/posd/.venv, made with the
distribution's own /usr/bin/python3, so the package depends on that Python's minor
version and on the Debian packages whose libraries the compiled modules load (found
with ldd and dpkg -S, as dpkg-shlibdeps would). Build it on the release and
architecture it is for: a bookworm amd64 machine builds for bookworm amd64, a
Raspberry Pi OS bookworm arm64 Pi (or an arm64 bookworm chroot) for the Pi.
Wheels PyPI has no binary for on that architecture (the xkbcommon binding, and
pydantic-core where no wheel exists) are compiled during the build, which then needs
gcc, python3-dev, libffi-dev and libxkbcommon-dev (and Rust for pydantic-core); the
terminal needs none of them.

Besides the virtualenv the package installs `/usr/bin/posd`, the unit
(/lib/systemd/system/posd.service), sysusers.d and tmpfiles.d entries, the udev rules
(/lib/udev/rules.d/99-posd.rules; an edited copy in /etc/udev/rules.d overrides it),
the example configuration and the Mosquitto snippets under /usr/share/posd, and
maintainer scripts (systemd/deb/) that make the user, reload udev, enable the service
(it starts once /etc/posd/posd.toml exists) and keep the ledger and configuration
unless a purge is confirmed.

Standard library only; needs dpkg-deb, ldd and python3-venv.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent
SYSTEMD = CHECKOUT / "systemd"
MAINTAINER_SCRIPTS = SYSTEMD / "deb"
VENV = Path("/opt/posd/.venv")
# Libraries every Debian system has through the Python it depends on.
ALWAYS_THERE = {"libc6"}
# Debian packages the installed files need besides the libraries found by ldd.
BASE_DEPENDS = [
    # deb-systemd-helper and deb-systemd-invoke, used by the maintainer scripts.
    "init-system-helpers (>= 1.52)",
    # systemd-sysusers, systemd-tmpfiles and the unit's sandbox settings.
    "systemd (>= 252)",
    # The purge question.
    "debconf (>= 0.5) | debconf-2.0",
    # Keyboard layouts the evdev scanner decoder compiles its keymap from.
    "xkb-data",
]
# Copied from the checkout when packaging (sources of site.py files etc. never are).
_SOURCE_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "build", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis", "*.db*"
)


_STARTED = time.monotonic()


def _say(message: str) -> None:
    elapsed = time.monotonic() - _STARTED
    print(f"[build-deb {elapsed:5.1f}s] {message}", file=sys.stderr, flush=True)


def _run(
    *command: str | Path, check: bool = True, **options: object
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in command], check=check, text=True, **options)  # type: ignore[call-overload,no-any-return]


def project_version() -> str:
    """The version in pyproject.toml, which is the package's version."""
    with (CHECKOUT / "pyproject.toml").open("rb") as file:
        version = str(tomllib.load(file)["project"]["version"])
    if not re.fullmatch(r"[0-9][A-Za-z0-9.+~]*", version):
        raise SystemExit(f"version {version!r} in pyproject.toml is not a Debian version")
    return version


def debian_architecture() -> str:
    return _run("dpkg", "--print-architecture", capture_output=True).stdout.strip()


def _python_version(python: Path) -> tuple[int, int]:
    out = _run(python, "-c", "import sys; print(*sys.version_info[:2])", capture_output=True)
    major, minor = out.stdout.split()
    return int(major), int(minor)


def build_virtualenv(stage: Path, python: Path, extra: list[str]) -> None:
    """posd (a terminal's part: no `[hq]`), its dependencies at the versions
    `constraints.txt` pins, and `extra` requirements (e.g. `lgpio` for a Pi's pins) in
    `stage`/opt/posd/.venv, paths as installed."""
    venv = stage / VENV.relative_to("/")
    source = Path(tempfile.mkdtemp(prefix="posd-source-"))
    try:
        # A clean copy: setuptools would otherwise package whatever stale build/lib holds.
        shutil.copytree(CHECKOUT, source / "posd", ignore=_SOURCE_IGNORE)
        _say(f"virtualenv with {python} at {VENV}")
        _run(python, "-m", "venv", venv)
        pip: list[str | Path] = [venv / "bin/python", "-m", "pip"]
        _run(
            *pip, "install", "-q", "--no-compile", "--no-warn-script-location",
            "-c", CHECKOUT / "constraints.txt", source / "posd", *extra,
        )  # fmt: skip
        # pip and setuptools only served the build: the terminal never installs into it.
        _run(*pip, "uninstall", "-q", "-y", "pip", "setuptools")
        _say("installed; compiling byte code")
    finally:
        shutil.rmtree(source, ignore_errors=True)
    _relocate(venv)
    # Byte code made now, with the installed paths in it: under ProtectSystem=strict
    # the daemon could not write it, and would compile every module at each start.
    # Checked against each source's hash, so a timestamp changed in transit is harmless.
    _run(
        python, "-m", "compileall", "-q", "-j0", "--invalidation-mode", "checked-hash",
        "-s", stage, "-p", "/", venv / "lib",
    )  # fmt: skip


def _relocate(venv: Path) -> None:
    """Rewrite the build location to /opt/posd/.venv in scripts and pyvenv.cfg."""
    built = str(venv).encode()
    installed = str(VENV).encode()
    for path in [*sorted((venv / "bin").iterdir()), venv / "pyvenv.cfg"]:
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        if built in data:
            path.write_bytes(data.replace(built, installed))
    leftover = _run("grep", "-rlF", str(venv), venv, capture_output=True, check=False).stdout
    if leftover.strip():
        raise SystemExit(f"files still name the build directory {venv}:\n{leftover}")


def library_packages(root: Path) -> list[str]:
    """Debian packages providing the shared libraries the compiled modules under `root`
    load, besides those bundled in the wheels themselves."""
    paths: set[str] = set()
    for path in root.rglob("*.so*"):
        if not path.is_file() or path.is_symlink() or not _is_elf(path):
            continue
        out = subprocess.run(["ldd", str(path)], capture_output=True, text=True, check=False)
        for line in out.stdout.splitlines():
            name, arrow, rest = line.partition("=>")
            if not arrow:
                continue
            target = rest.split("(")[0].strip()
            if target == "not found":
                raise SystemExit(f"{path} needs {name.strip()}, which this machine lacks")
            if target and not target.startswith(str(root)):
                paths.add(os.path.realpath(target))
    packages: set[str] = set()
    for library in sorted(paths):
        owner = _owner(library)
        if owner is None:
            raise SystemExit(f"no Debian package owns {library}, which posd's modules load")
        packages.add(owner)
    return sorted(packages - ALWAYS_THERE)


def _is_elf(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(4) == b"\x7fELF"


def _owner(path: str) -> str | None:
    # Merged /usr: dpkg may know the file under /lib or under /usr/lib.
    candidates = [path]
    if path.startswith("/usr/"):
        candidates.append(path.removeprefix("/usr"))
    else:
        candidates.append("/usr" + path)
    for candidate in candidates:
        out = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
        if out.returncode == 0:
            return out.stdout.split(":", 1)[0].split(",")[0].strip()
    return None


def install_files(stage: Path) -> None:
    """The unit, users, directories, udev rules, examples and the command on PATH."""
    placed = {
        "posd.service": ("lib/systemd/system/posd.service", 0o644),
        "posd.sysusers": ("usr/lib/sysusers.d/posd.conf", 0o644),
        "posd.tmpfiles": ("usr/lib/tmpfiles.d/posd.conf", 0o644),
        "99-posd.rules": ("lib/udev/rules.d/99-posd.rules", 0o644),
        "posd.toml.example": ("usr/share/posd/posd.toml.example", 0o644),
        "mosquitto/posd.conf": ("usr/share/posd/mosquitto/posd.conf", 0o644),
        "mosquitto/acl": ("usr/share/posd/mosquitto/acl", 0o644),
        "mosquitto/README.md": ("usr/share/doc/posd/mosquitto.md", 0o644),
        "README.md": ("usr/share/doc/posd/systemd.md", 0o644),
        # The lane screen's kiosk browser, for terminals with a screen (systemd/README.md).
        "posd-screen.service": ("usr/share/posd/screen/posd-screen.service", 0o644),
        "posd-screen.sysusers": ("usr/share/posd/screen/posd-screen.sysusers", 0o644),
        "posd-screen.pam": ("usr/share/posd/screen/posd-screen.pam", 0o644),
        "posd-screen.chromium.json": ("usr/share/posd/screen/posd-screen.chromium.json", 0o644),
    }
    for source, (target, mode) in placed.items():
        path = stage / target
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SYSTEMD / source, path)
        path.chmod(mode)
    shutil.copyfile(CHECKOUT / "README.md", stage / "usr/share/doc/posd/README.md")
    (stage / "usr/bin").mkdir(parents=True, exist_ok=True)
    (stage / "usr/bin/posd").symlink_to(VENV / "bin/posd")


def write_control(stage: Path, version: str, arch: str, depends: list[str]) -> None:
    debian = stage / "DEBIAN"
    debian.mkdir()
    size_kib = sum((p.lstat().st_size + 1023) // 1024 for p in stage.rglob("*") if not p.is_dir())
    fields = {
        "Package": "posd",
        "Version": version,
        "Architecture": arch,
        "Maintainer": "posd developers <posd@localhost>",
        "Installed-Size": str(size_kib),
        "Depends": ", ".join(depends),
        "Suggests": "mosquitto",
        "Section": "misc",
        "Priority": "optional",
        "Description": "serial-tracking checkout terminal daemon\n"
        " posd reads barcode scanners, drives a customer display, ESC/POS receipt\n"
        " printer and GPIO, checks every scan against a local, hash-chained serial\n"
        " ledger and replicates the ledger to HQ over MQTT.\n"
        " .\n"
        " After installing, run `posd provision` to give the terminal its identity,\n"
        " branch, HQ broker and devices; the service starts once it is provisioned.",
    }
    text = "".join(f"{key}: {value}\n" for key, value in fields.items())
    (debian / "control").write_text(text, encoding="utf-8")
    for name in ("postinst", "prerm", "postrm", "config", "templates"):
        target = debian / name
        shutil.copyfile(MAINTAINER_SCRIPTS / name, target)
        target.chmod(0o644 if name == "templates" else 0o755)
    sums = []
    for path in sorted(stage.rglob("*")):
        if path.is_file() and not path.is_symlink() and debian not in path.parents:
            digest = hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
            sums.append(f"{digest}  {path.relative_to(stage)}\n")
    (debian / "md5sums").write_text("".join(sums), encoding="utf-8")


def build(out: Path, python: Path, extra: list[str] | None = None) -> Path:
    """Build the package into `out`; its path."""
    if shutil.which("dpkg-deb") is None:
        raise SystemExit("dpkg-deb is missing: this builds on Debian or a derivative")
    if not str(python).startswith("/usr/"):
        raise SystemExit(
            f"{python} is not the distribution's Python; the package depends on Debian's "
            "python3, so build with /usr/bin/python3 (--python)"
        )
    version, arch = project_version(), debian_architecture()
    major, minor = _python_version(python)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="posd-deb-") as tmp:
        stage = Path(tmp) / f"posd_{version}_{arch}"
        stage.mkdir()
        build_virtualenv(stage, python, extra or [])
        install_files(stage)
        depends = [
            f"python3 (>= {major}.{minor}~)",
            f"python3 (<< {major}.{minor + 1})",
            *BASE_DEPENDS,
            *library_packages(stage / VENV.relative_to("/")),
        ]
        _say("dependencies found")
        write_control(stage, version, arch, depends)
        for path in stage.rglob("*"):
            if path.is_dir():
                path.chmod(0o755)
            elif not path.is_symlink():
                executable = path.stat().st_mode & stat.S_IXUSR
                path.chmod(0o755 if executable else 0o644)
        target = out / f"posd_{version}_{arch}.deb"
        _say(f"packing {target.name}")
        _run(
            "dpkg-deb", "--root-owner-group", "-Zzstd",
            "--build", stage, target,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
    return target


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=CHECKOUT / "build", help="output folder")
    parser.add_argument(
        "--python",
        type=Path,
        default=Path("/usr/bin/python3"),
        help="the distribution's python3 the virtualenv is made with",
    )
    parser.add_argument(
        "--with",
        dest="extra",
        action="append",
        default=[],
        metavar="REQUIREMENT",
        help="also install this into the virtualenv (repeatable), e.g. lgpio on a Pi",
    )
    args = parser.parse_args(argv)
    print(build(args.out.resolve(), args.python, args.extra))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
