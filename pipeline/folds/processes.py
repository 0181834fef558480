"""Whether a process of this host still runs: a lost trial's owner, a killed sweep's folders."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host still runs (a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """A killed process whose parent has not reaped it yet still answers ``kill(pid, 0)``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc (not Linux) or gone meanwhile
        return False
    return stat.rpartition(")")[2].split()[0] == "Z"


def folder_of_this_process(prefix: str) -> str:
    """A new temporary folder named ``PREFIX<pid>-<suffix>``, removed when this process exits;
    the folders of the same prefix left by processes that are gone are removed first."""
    remove_folders_of_gone_processes(tempfile.gettempdir(), prefix)
    folder = tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def remove_folders_of_gone_processes(parent: str, prefix: str) -> None:
    """Remove the folders ``PREFIX<pid>-*`` under ``parent`` whose process is gone: a killed
    process (SIGKILL, a lost node) never runs the clean-up registered at exit. A folder without
    a pid in its name is not ours to judge."""
    for folder in Path(parent).glob(f"{prefix}*-*"):
        pid = folder.name.removeprefix(prefix).split("-", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
