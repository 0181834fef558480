"""Cancel flags: files whose existence tells a running fold that its trial no longer needs it.

A fold still running when its trial is pruned would otherwise be fitted to the end and thrown
away while the next trial waits for its process. The flags of one sweep live in one temporary
folder, removed at exit, or by a later sweep when this one was killed.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from pathlib import Path

from pipeline.folds.processes import process_alive

_cancel_folder: list[str] = []  # this process's folder of cancel flags, made when first needed


CANCEL_FOLDER_PREFIX = "mlp-sweep-cancel-"  # then the sweep's pid, "-", a random suffix


def new_cancel_flag() -> str:
    """A path, not yet created, for one trial's cancel flag (under a folder removed at exit)."""
    if not _cancel_folder:
        remove_stale_cancel_folders(tempfile.gettempdir())
        folder = tempfile.mkdtemp(prefix=f"{CANCEL_FOLDER_PREFIX}{os.getpid()}-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        _cancel_folder.append(folder)
    return os.path.join(_cancel_folder[0], uuid.uuid4().hex)


def remove_stale_cancel_folders(parent: str) -> None:
    """Remove the cancel-flag folders of sweeps whose process is gone: a killed sweep (SIGKILL,
    a lost node) never runs the clean-up registered at exit."""
    for folder in Path(parent).glob(f"{CANCEL_FOLDER_PREFIX}*-*"):
        pid = folder.name.removeprefix(CANCEL_FOLDER_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
