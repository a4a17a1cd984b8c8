"""The boot tests' Debian root comes from the mirror and release this machine's apt uses:
the apt sources are read the way apt reads them (deb822 and one-line, disabled ones
skipped)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.boot_machine import Mirror


def machine_etc(tmp_path: Path, sources: dict[str, str], codename: str = "bookworm") -> Path:
    etc = tmp_path / "etc"
    (etc / "apt/sources.list.d").mkdir(parents=True)
    (etc / "os-release").write_text(f'NAME="Debian"\nVERSION_CODENAME={codename}\n')
    for name, text in sources.items():
        (etc / "apt" / name).write_text(text)
    return etc


def test_the_deb822_source_for_this_release_is_the_mirror(tmp_path: Path) -> None:
    etc = machine_etc(
        tmp_path,
        {
            "sources.list.d/debian.sources": (
                "Types: deb\n"
                "# a comment\n"
                "URIs: http://mirror.example/debian/\n"
                "Suites: bookworm bookworm-updates\n"
                "Components: main\n"
                "\n"
                "Types: deb\n"
                "URIs: http://mirror.example/debian-security\n"
                "Suites: bookworm-security\n"
            ),
            "sources.list.d/other.list.disabled": "deb http://elsewhere.example/x bookworm main\n",
        },
    )
    assert Mirror.of_this_machine(etc) == Mirror("http://mirror.example/debian", "bookworm")


def test_a_disabled_stanza_and_source_lines_are_skipped(tmp_path: Path) -> None:
    etc = machine_etc(
        tmp_path,
        {
            "sources.list.d/a.sources": (
                "Enabled: no\nTypes: deb\nURIs: http://off.example/debian\nSuites: bookworm\n"
            ),
            "sources.list": (
                "deb-src http://src.example/debian bookworm main\n"
                "# deb http://commented.example/debian bookworm main\n"
                "deb [arch=amd64 signed-by=/k.gpg] http://one.example/debian bookworm main\n"
            ),
        },
    )
    assert Mirror.of_this_machine(etc) == Mirror("http://one.example/debian", "bookworm")


def test_no_source_for_the_release_says_so(tmp_path: Path) -> None:
    etc = machine_etc(
        tmp_path, {"sources.list": "deb http://m.example/debian bullseye main\n"}, "bookworm"
    )
    with pytest.raises(RuntimeError, match="no apt source for bookworm"):
        Mirror.of_this_machine(etc)
