"""The Optuna journal file, kept readable when a write was torn.

Optuna appends one JSON record per line. A write cut short (a full disk, a process killed
mid-write, a node lost) leaves a partial last line; Optuna's reader skips a partial *last* line,
but the next append lands right after it, and the merged line then fails every later read of
the study with a decode error: its finished trials can no longer be loaded. Before a worker opens
the journal, :func:`set_aside_torn_records` moves such bytes to ``<journal>.torn`` (never
dropped) and keeps every whole record.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from optuna.storages.journal import JournalFileSymlinkLock

log = logging.getLogger(__name__)
RECORD_START = b'{"op_code":'  # how Optuna's journal writes every record
TORN_SUFFIX = ".torn"


def set_aside_torn_records(path: Path) -> int:
    """Move the torn bytes of the journal at ``path`` to ``<path>.torn``; returns how many.

    Runs under the journal's own lock, so no other worker appends meanwhile. The repaired
    journal replaces the old one atomically: a crash during the repair leaves either. A file
    with no record at all is not a journal: ValueError, and the file is left untouched.
    """
    if not path.is_file() or path.stat().st_size == 0:
        return 0
    with _journal_lock(path):
        data = path.read_bytes()
        records, torn = split_records(data)
        if not torn:
            return 0
        if not records:  # nothing of Optuna's in it: someone else's file, left as it is
            raise ValueError("no journal record in it")
        aside = path.with_name(path.name + TORN_SUFFIX)
        with open(aside, "ab") as kept:
            kept.write(torn if torn.endswith(b"\n") else torn + b"\n")
            kept.flush()
            os.fsync(kept.fileno())
        staging = path.with_name(f".{path.name}.repair")
        staging.write_bytes(records)
        os.replace(staging, path)
    log.warning(
        "study.storage=%s: %d bytes of a torn write set aside in %s; every whole record is kept",
        path,
        len(torn),
        aside,
    )
    return len(torn)


def split_records(data: bytes) -> tuple[bytes, bytes]:
    """``data`` as (the whole records, the torn bytes between or after them).

    A whole record is a line that starts a record and ends with a newline. A line that holds a
    torn write followed by a whole record (the next append landed after it) gives both.
    """
    whole, torn = [], []
    for line in data.splitlines(keepends=True):
        start = line.rfind(RECORD_START)
        if start > 0:
            torn.append(line[:start])
            line = line[start:]
        if start >= 0 and line.endswith(b"\n"):
            whole.append(line)
        else:
            torn.append(line)
    return b"".join(whole), b"".join(torn)


class _journal_lock:
    """The lock Optuna's JournalFileBackend takes around each append."""

    def __init__(self, path: Path):
        self.lock = JournalFileSymlinkLock(str(path))

    def __enter__(self):
        self.lock.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.lock.release()
