"""The one exception type for mistakes a user can fix (config, data, environment), and the
environment errors it stands for."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager


class UserInputError(ValueError):
    """A problem in the user's config, data or environment.

    The message is one line that names the key, file or column at fault and how to fix it;
    ``python -m pipeline.sweep`` prints it without a traceback and exits with code 2.
    """


SQLITE_DISK_FULL = "database or disk is full"  # SQLite's message, through SQLAlchemy and MLflow


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error``, or an error it was raised from, says the disk is full: an OSError of
    ENOSPC from a file write, or SQLite's "database or disk is full" (through SQLAlchemy)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return True
        if SQLITE_DISK_FULL in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


@contextmanager
def disk_full_as_one_line(stores: str) -> Iterator[None]:
    """A full disk met inside becomes a :class:`UserInputError` naming ``stores``: what was
    written before stays readable, and the same command resumes once there is space."""
    try:
        yield
    except Exception as error:
        if not is_disk_full(error):
            raise
        raise UserInputError(
            f"{stores}: no space left on the disk; finished trials are kept: free space and "
            "rerun the same command to resume"
        ) from None
