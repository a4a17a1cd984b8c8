"""Files that provisioning writes: whole or not at all, with their mode from the start.

A file is written to a temporary name created with its final mode (so a secret is
never readable by others, not even for a moment), synced, then renamed over the old
one. On the terminal, run as root with the `posd` user present, files the service
reads belong to root:posd and files the service owns to posd:posd (`Owner`); written
by anyone else (into an image, a test's tree) they keep the writer's owner.
"""

from __future__ import annotations

import contextlib
import os
import pwd
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Who = Literal["root", "posd"]


def under(root: Path, path: str | Path) -> Path:
    """Where the terminal's `path` lives in the tree at `root`."""
    return root / str(path).lstrip("/")


@dataclass(frozen=True)
class FileToInstall:
    target: str  # as the terminal sees it, e.g. /etc/posd/mqtt-password
    content: bytes
    mode: int
    owner: Who  # root:posd (the service reads it) or posd:posd (the service owns it)


@dataclass(frozen=True)
class Owner:
    """The posd user and group, for files provisioning writes on the terminal itself."""

    posd_uid: int
    posd_gid: int

    @classmethod
    def on_this_system(cls) -> Owner | None:
        """The posd user when running as root and it exists (systemd-sysusers made it)."""
        if os.geteuid() != 0:
            return None
        try:
            user = pwd.getpwnam("posd")
        except KeyError:
            return None
        return cls(user.pw_uid, user.pw_gid)

    def give(self, path: Path, who: Who) -> None:
        """root:posd for `who="root"` (the service reads it), posd:posd for `"posd"`."""
        os.chown(path, 0 if who == "root" else self.posd_uid, self.posd_gid)


def private_dir(path: Path, mode: int, owner: Owner | None, who: Who = "posd") -> None:
    """Make the folder (and its parents) and give it `mode`, whatever the umask."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)
    if owner is not None:
        owner.give(path, who)


def write_atomic(path: Path, content: bytes, mode: int, owner: Owner | None, who: Who) -> None:
    """Replace `path` with `content`; the file has `mode` from the moment it exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.new")
    staging.unlink(missing_ok=True)
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have taken bits away
        if owner is not None:
            os.fchown(fd, 0 if who == "root" else owner.posd_uid, owner.posd_gid)
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(staging, path)
    with contextlib.suppress(OSError):  # not every filesystem syncs a folder
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def install_file(path: Path, content: bytes, mode: int, owner: Owner | None, who: Who) -> bool:
    """Make `path` hold `content` with `mode` (and owner); False when the bytes were
    already there (then only mode and owner are put right)."""
    if path.is_file() and path.read_bytes() == content:
        os.chmod(path, mode)
        if owner is not None:
            owner.give(path, who)
        return False
    write_atomic(path, content, mode, owner, who)
    return True
