"""The command line run in a process forked from one that has already imported the project.

A command that is refused ends in about a second of its own work, after two to three seconds of
imports (scikit-learn, Hydra, MLflow). A test that runs a hundred refused commands spends most of
its time importing; :class:`PreloadedCli` imports once, in a server process, and forks a child per
command. Each child is a real process with its own working folder, environment, argv and standard
streams, and runs the module as ``python -m`` does (``runpy``, ``__name__ == "__main__"``,
``atexit`` handlers at the end); only the interpreter's start and the imports are shared. The
server reaps the children, so the exit status is the real one (a signal gives ``-signum``).

Only for commands whose subject is what the command checks and prints: a process forked from a
loaded interpreter has BLAS and thread settings fixed at import, so sweeps that train stay
``subprocess`` runs (tests/helpers.py ``run_cli``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests.helpers import ROOT

SERVER = r"""
import atexit, json, os, runpy, select, signal, sys, traceback, warnings

for module in sys.argv[1:]:
    __import__(module)

children = {}  # pid -> the file its exit status goes to


def reap():
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        path = children.pop(pid)
        with open(path + ".tmp", "w") as out:
            out.write(str(os.waitstatus_to_exitcode(status)))
        os.replace(path + ".tmp", path)


def child(request):
    code = 1
    try:
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
            os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), fd)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        signal.alarm(int(request["timeout"]))
        module = request["module"]
        # The module is loaded already, on purpose; runpy runs a fresh copy as __main__.
        warnings.filterwarnings("ignore", "'" + module + "' found in sys.modules", RuntimeWarning)
        sys.argv = [module, *request["args"]]
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exit:
            if exit.code is None or isinstance(exit.code, int):
                code = exit.code or 0
            else:
                print(exit.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
        atexit._run_exitfuncs()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


print("ready", flush=True)
stdin = sys.stdin.buffer
while True:
    ready, _, _ = select.select([stdin], [], [], 0.02)
    reap()
    if not ready:
        continue
    line = stdin.readline()
    if not line:
        break
    request = json.loads(line)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        child(request)
    children[pid] = request["status"]
while children:
    reap()
    select.select([], [], [], 0.02)
"""


class PreloadedCli:
    """``run(args, cwd)`` as :func:`tests.helpers.run_cli` returns it, from a forked child of a
    server that imported ``preload``. Safe to call from several threads."""

    def __init__(self, preload: tuple[str, ...] = ("pipeline.sweep", "mlflow", "optuna")):
        self._folder = Path(tempfile.mkdtemp(prefix="preloaded-cli-"))
        self._server = subprocess.Popen(
            [sys.executable, "-c", SERVER, *preload],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=os.environ.copy(),
        )
        assert self._server.stdout.readline() == b"ready\n", "the preloaded CLI did not start"
        self._lock = threading.Lock()
        self._count = 0

    def run(
        self, args: list[str], cwd: Path, timeout: float = 120, env: dict | None = None
    ) -> subprocess.CompletedProcess:
        module, args = (args[1], args[2:]) if args and args[0] == "-m" else ("pipeline.sweep", args)
        with self._lock:
            self._count += 1
            stem = self._folder / str(self._count)
        request = {
            "module": module,
            "args": list(args),
            "cwd": str(cwd),
            "env": {**os.environ, **(env or {})},
            "timeout": max(1, int(timeout)),
            "stdout": f"{stem}.out",
            "stderr": f"{stem}.err",
            "status": f"{stem}.status",
        }
        with self._lock:
            self._server.stdin.write(json.dumps(request).encode() + b"\n")
            self._server.stdin.flush()
        status = Path(request["status"])
        deadline = time.monotonic() + timeout + 30
        while not status.exists():
            if time.monotonic() > deadline or self._server.poll() is not None:
                raise subprocess.TimeoutExpired([module, *args], timeout)
            time.sleep(0.02)
        return subprocess.CompletedProcess(
            [sys.executable, "-m", module, *args],
            int(status.read_text()),
            Path(request["stdout"]).read_text(errors="replace"),
            Path(request["stderr"]).read_text(errors="replace"),
        )

    def close(self) -> None:
        self._server.stdin.close()
        try:
            self._server.wait(timeout=60)
        finally:
            if self._server.poll() is None:
                self._server.kill()
            for path in self._folder.iterdir():
                path.unlink()
            self._folder.rmdir()
