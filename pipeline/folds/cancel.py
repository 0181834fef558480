"""Cancel flags: files whose existence tells a running fold that its trial no longer needs it.

A fold still running when its trial is pruned would otherwise be fitted to the end and thrown
away while the next trial waits for its process. The flags of one sweep live in one temporary
folder, removed at exit, or by a later sweep when this one was killed.
"""

from __future__ import annotations

import os
import uuid

from pipeline.folds.processes import folder_of_this_process

_cancel_folder: list[str] = []  # this process's folder of cancel flags, made when first needed


CANCEL_FOLDER_PREFIX = "mlp-sweep-cancel-"  # then the sweep's pid, "-", a random suffix


def new_cancel_flag() -> str:
    """A path, not yet created, for one trial's cancel flag (under a folder removed at exit)."""
    if not _cancel_folder:
        _cancel_folder.append(folder_of_this_process(CANCEL_FOLDER_PREFIX))
    return os.path.join(_cancel_folder[0], uuid.uuid4().hex)
