"""The chain head kept outside the ledger file, so deleting the newest events shows.

The hash chain proves every event follows the one before it, but not that nothing
came after the last one: whoever deletes the newest events (and puts the triggers
back) leaves a shorter chain that links perfectly. So every commit of this ledger's
own events also writes the new head (seq and hash) to a small file beside the ledger,
`<ledger>.head`, and so does HQ's acknowledgement (the seq HQ confirmed storing, with
the hash of that event). `posd audit verify` checks the file against both.

Cost on the lane: the record is written with one `pwrite` after the commit and made
durable (`fdatasync`) at the next checkpoint, between customers, never inside a
sale. After a power cut the record may therefore be older than the ledger: a ledger
*longer* than its head record is fine as long as the chain links; only a shorter one,
or a different event at the recorded seq, is reported.

The file holds two fixed-size slots of readable JSON, each with its own checksum,
written in turn: a torn write spoils one slot and the other still holds the head
before it. Writers (the lane, a CLI command, replication) take the file's lock,
merge with what is there (the highest seq wins) and write the older slot.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from daemon.ledger.errors import LedgerError

SLOT_BYTES = 512
SLOTS = 2


class HeadRecordDamaged(LedgerError):
    """Neither slot of the head record can be read."""


@dataclass(frozen=True)
class HeadRecord:
    """This ledger's chain head as last written outside the file, and HQ's ack."""

    terminal: str
    epoch: str
    seq: int
    hash: str
    acked_seq: int = 0
    acked_hash: str = ""

    def merged(self, other: HeadRecord | None) -> HeadRecord:
        """The further of the two heads and the further of the two acks (same epoch)."""
        if other is None or (other.terminal, other.epoch) != (self.terminal, self.epoch):
            return self
        head = self if self.seq >= other.seq else other
        ack = self if self.acked_seq >= other.acked_seq else other
        return replace(head, acked_seq=ack.acked_seq, acked_hash=ack.acked_hash)


def head_path(ledger_path: str | Path) -> Path:
    """Where the head record of the ledger at `ledger_path` is kept."""
    path = Path(ledger_path)
    return path.with_name(path.name + ".head")


def _encode(record: HeadRecord) -> bytes:
    fields = asdict(record)
    check = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]
    text = json.dumps(fields | {"check": check}, sort_keys=True).encode()
    if len(text) + 1 > SLOT_BYTES:
        raise LedgerError(f"head record of {len(text)} bytes does not fit its slot")
    return text.ljust(SLOT_BYTES - 1) + b"\n"


def _decode(raw: bytes) -> HeadRecord | None:
    try:
        fields = json.loads(raw.decode())
        check = fields.pop("check")
        record = HeadRecord(**fields)
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    expected = hashlib.sha256(json.dumps(asdict(record), sort_keys=True).encode()).hexdigest()
    if check != expected[:16] or not isinstance(record.seq, int):
        return None
    return record


def _slots(fd: int) -> list[HeadRecord | None]:
    return [_decode(os.pread(fd, SLOT_BYTES, n * SLOT_BYTES)) for n in range(SLOTS)]


def _newest(slots: list[HeadRecord | None]) -> HeadRecord | None:
    found = [s for s in slots if s is not None]
    if not found:
        return None
    best = max(found, key=lambda s: s.seq)
    for other in found:
        best = best.merged(other)
    return best


def _age(slot: HeadRecord | None) -> tuple[int, int]:
    return (-1, -1) if slot is None else (slot.seq, slot.acked_seq)


def read_head(path: Path) -> HeadRecord | None:
    """The head record at `path`; None when there is no such file. HeadRecordDamaged
    when neither slot holds a record (a torn write spoils one slot at most)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    except PermissionError as error:
        raise LedgerError(
            f"the head record {path} cannot be read ({error.strerror}): give it the ledger"
            " file's owner and mode"
        ) from None
    try:
        record = _newest(_slots(fd))
    finally:
        os.close(fd)
    if record is None:
        raise HeadRecordDamaged(f"the head record {path} cannot be read (neither slot is whole)")
    return record


class HeadFile:
    """The head record, open for writing by one ledger connection."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd
        self._unsynced = False

    @classmethod
    def create(cls, path: Path, record: HeadRecord, *, like: Path | None = None) -> HeadFile:
        """A new head record holding `record` (replacing any file there), durable;
        owned like the file `like` (the ledger) when root makes it, as SQLite does
        with the ledger's WAL, so the service can still write it."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        if like is not None and os.geteuid() == 0:
            owner = os.stat(like)
            os.fchown(fd, owner.st_uid, owner.st_gid)
        data = _encode(record)
        os.pwrite(fd, data * SLOTS, 0)
        os.fsync(fd)
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
        return cls(path, fd)

    @classmethod
    def open(cls, path: Path) -> HeadFile | None:
        """The existing head record at `path`, or None when there is none."""
        try:
            return cls(path, os.open(path, os.O_RDWR))
        except FileNotFoundError:
            return None

    def advance(self, record: HeadRecord) -> None:
        """Record a head (and ack) at least as far as `record`: merged with what the
        file holds, written over its older slot. Durable at the next `sync`."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            slots = _slots(self._fd)
            merged = record.merged(_newest(slots))
            if merged in slots:
                return
            older = min(range(SLOTS), key=lambda n: _age(slots[n]))
            os.pwrite(self._fd, _encode(merged), older * SLOT_BYTES)
            self._unsynced = True
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def sync(self) -> None:
        """Make what `advance` wrote durable (between customers, at a checkpoint)."""
        if self._unsynced:
            os.fdatasync(self._fd)
            self._unsynced = False

    def close(self) -> None:
        try:
            self.sync()
        finally:
            os.close(self._fd)
