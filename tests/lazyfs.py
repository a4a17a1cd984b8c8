"""LazyFS for power-cut tests: built once per machine, mounted over a folder.

SIGKILL leaves the kernel's page cache alone, so a killed process never loses a write
it made, synced or not. LazyFS (INESC TEC; sources in `tests/tools/lazyfs`) is a FUSE
file system with a page cache of its own: `LazyFS.clear_cache()` drops every write not
yet fsync'd, as a power cut does. What fsync'd is in the folder under the mount
(`LazyFS.disk`), which is what a disk keeps.

    binary = lazyfs_binary()              # builds it the first time, then cached
    with LazyFS(binary, folder) as fs:    # fs.mnt: where the program writes
        ...
        fs.clear_cache()                  # the cut: unsynced writes are gone
    # fs.disk: what survived

The build is keyed by the hash of the sources, under `/var/cache/posd-lazyfs` (see
`cache_root`), so a machine builds each version once.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType

SOURCES = Path(__file__).resolve().parent / "tools" / "lazyfs"
_SYSTEM_CACHE = Path("/var/cache/posd-lazyfs")
_CLEAR = b"lazyfs::clear-cache\n"
_CLEARED = b"finished::clear-cache"


def cache_root() -> Path:
    """Where builds are kept: `$POSD_LAZYFS_CACHE`, else /var/cache/posd-lazyfs when
    this user may write there, else the user's own cache folder."""
    if os.environ.get("POSD_LAZYFS_CACHE"):
        return Path(os.environ["POSD_LAZYFS_CACHE"])
    nearest = _SYSTEM_CACHE if _SYSTEM_CACHE.exists() else _SYSTEM_CACHE.parent
    if os.access(nearest, os.W_OK):
        return _SYSTEM_CACHE
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "posd-lazyfs"


def fuse_missing() -> str | None:
    """Why this machine cannot mount a FUSE file system, or None when it can."""
    if not Path("/dev/fuse").exists():
        return "no /dev/fuse on this machine: FUSE is absent, LazyFS cannot be mounted"
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        return "/dev/fuse cannot be opened by this user: FUSE is not available to it"
    if os.geteuid() != 0 and shutil.which("fusermount3") is None:
        return "no fusermount3 and not root (the fuse3 package installs it)"
    return None


def source_key() -> str:
    """The hash of the build script and the archives it builds from."""
    digest = hashlib.sha256()
    for path in sorted(SOURCES.iterdir()):
        if path.name == "build.sh" or path.name.endswith(".tar.gz"):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def lazyfs_binary() -> Path:
    """The `lazyfs` binary, built from `SOURCES` the first time on this machine (about
    a minute and a half; the Debian packages it needs are installed when missing)."""
    root = cache_root()
    cache = root / source_key()
    binary = cache / "lazyfs" / "lazyfs" / "build" / "lazyfs"
    if os.access(binary, os.X_OK):
        return binary
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test process may be building it
        if not os.access(binary, os.X_OK):
            done = subprocess.run(
                ["bash", str(SOURCES / "build.sh"), str(cache)],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0 or not os.access(binary, os.X_OK):
                log = cache / "build.log"
                tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
                raise RuntimeError(
                    f"building LazyFS failed (status {done.returncode}):\n"
                    f"{done.stdout}{done.stderr}\n{tail}"
                )
    return binary


class LazyFS:
    """LazyFS mounted at `folder/mnt` over `folder/disk`."""

    def __init__(
        self, binary: Path, folder: Path, *, settings: str = "", log_operations: bool = False
    ) -> None:
        self.binary = binary
        self.settings = settings  # more of LazyFS's configuration (TOML), e.g. injections
        self.log_operations = log_operations  # every file operation into `log`
        self.folder = folder
        self.disk = folder / "disk"
        self.mnt = folder / "mnt"
        self.log = folder / "lazyfs.log"
        self._faults = folder / "faults.fifo"
        self._done = folder / "done.fifo"
        self._done_fd: int | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def mount(self, timeout_s: float = 15.0) -> LazyFS:
        self.disk.mkdir(parents=True, exist_ok=True)
        self.mnt.mkdir(parents=True, exist_ok=True)
        config = self.folder / "lazyfs.toml"
        config.write_text(
            "[faults]\n"
            f'fifo_path="{self._faults}"\n'
            f'fifo_path_completed="{self._done}"\n'
            "[cache]\napply_eviction=false\n"
            '[cache.simple]\ncustom_size="64mb"\nblocks_per_page=1\n'
            f"[filesystem]\nlog_all_operations={str(self.log_operations).lower()}\n"
            'logfile=""\n' + self.settings
        )
        for fifo in (self._faults, self._done):
            if not fifo.exists():
                os.mkfifo(fifo)
        # LazyFS opens the "done" FIFO for writing at start, which waits for a reader.
        self._done_fd = os.open(self._done, os.O_RDONLY | os.O_NONBLOCK)
        # Relative: LazyFS ignores a config path containing "-o" (as /tmp/pytest-of-root
        # does), taking it for a mount option.
        command = [str(self.binary), str(self.mnt), "--config-path", config.name]
        command += ["-o", "modules=subdir", "-o", f"subdir={self.disk}"]
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                [*command, "-f"], cwd=self.folder, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout_s
        while not self.mounted:
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.unmount()
                raise RuntimeError(f"LazyFS did not mount at {self.mnt}:\n{self.output}")
            time.sleep(0.02)
        return self

    @property
    def mounted(self) -> bool:
        """Whether anything is mounted at `mnt` (a dead FUSE mount fails os.path.ismount)."""
        with open("/proc/self/mounts", encoding="utf-8") as mounts:
            return any(line.split()[1] == str(self.mnt) for line in mounts if line.strip())

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def clear_cache(self, timeout_s: float = 30.0) -> None:
        """Drop every write not yet fsync'd; returns once LazyFS says it is done."""
        assert self._done_fd is not None, "mount() first"
        if not self.running:
            raise RuntimeError(f"LazyFS is not running:\n{self.output}")
        fd = os.open(self._faults, os.O_WRONLY | os.O_NONBLOCK)  # LazyFS holds it open
        try:
            os.write(fd, _CLEAR)
        finally:
            os.close(fd)
        heard = b""
        deadline = time.monotonic() + timeout_s
        while _CLEARED not in heard:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"LazyFS did not clear its cache:\n{self.output}")
            ready, _, _ = select.select([self._done_fd], [], [], left)
            if ready:
                heard += os.read(self._done_fd, 256)

    def unmount(self) -> None:
        if self._process is not None:
            if self.mounted:  # (also when LazyFS died: its mount is still there)
                fusermount = shutil.which("fusermount3") or "fusermount"
                subprocess.run([fusermount, "-u", str(self.mnt)], capture_output=True, check=False)
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
                subprocess.run(["umount", "-l", str(self.mnt)], capture_output=True, check=False)
            self._process = None
        if self._done_fd is not None:
            os.close(self._done_fd)
            self._done_fd = None

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def __enter__(self) -> LazyFS:
        return self.mount()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.unmount()
