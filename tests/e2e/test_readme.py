"""The README's commands, run as a user runs them, in the README's order, in one fresh folder.

Every ```bash block of README.md is read and each command run through ``bash`` with the venv's
``bin`` first on PATH, as after ``. .venv/bin/activate``. What a test cannot do verbatim is
changed in the open, here:

- the install line is the environment these tests already run in, and ``pytest`` is this suite;
- sweeps and trains get overrides appended that shrink their budgets (Hydra's last value wins),
  so that the whole README runs in about a minute;
- servers (``mlflow ui``, ``mlflow models serve``) listen on a free port instead of their fixed
  one (CI's own MLflow server holds 5000), and are stopped after the command that uses them;
- the SLURM command names the reader's own hosts; tests/services/test_cluster.py runs that
  command's form on the cluster CI starts.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.shared_sweep import free_port, running_server
from tests.helpers import ROOT

README = ROOT / "README.md"
VENV_BIN = str(Path(sys.executable).parent)
SHRINK = [
    "study.n_trials=3",
    "cv.folds=3",
    "cv.n_jobs=2",
    "search_space.iterations.high=60",
    "search_space.hidden_units.high=32",
    "progress_bar=false",
]
SHRINK_TRAIN = ["cv.folds=3", "cv.n_jobs=2", "params.iterations=60"]
SUMMARY_LINES = (
    "study ",
    "best: ",
    "CV accuracy ",
    "champion: ",
    "parent run ",
    "inspect: mlflow ui ",
    "  then open http://127.0.0.1:5000/#/experiments/",
)


def fenced_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.S | re.M)


def commands(block: str) -> list[str]:
    """One string per command: ``\\`` continuations joined, comments and blanks dropped."""
    joined = re.sub(r"\\\n\s*", "", block)
    return [
        line.strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")
    ]


def readme_commands() -> list[str]:
    text = README.read_text()
    return [command for block in fenced_blocks(text, "bash") for command in commands(block)]


def test_readme_blocks_parse_and_hold_the_documented_entry_points():
    found = readme_commands()
    assert found[:3] == [
        'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[dev]"',
        "pytest",
        "python -m pipeline.sweep",
    ]
    assert any(c.startswith("mlflow ui ") for c in found)
    assert any(c.startswith("mlflow models serve ") for c in found)
    assert any(c.startswith("python -m pipeline.train ") for c in found)
    assert any(" -m worker=" in c for c in found)
    assert len(fenced_blocks(README.read_text(), "python")) == 1


def shell(command: str, cwd: Path, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.slow  # every command of the README: sweeps, a multirun, two servers
def test_readme_commands_run_as_documented(tmp_path):
    env = {**os.environ, "PATH": VENV_BIN + os.pathsep + os.environ.get("PATH", "")}
    env.pop("MLFLOW_TRACKING_URI", None)
    ran = []
    servers = {}
    for command in readme_commands():
        if command.startswith("python3 -m venv") or command == "pytest":
            continue
        if "DBHOST" in command:
            continue
        if command.startswith("export "):
            name, _, value = command.removeprefix("export ").partition("=")
            env[name] = value
        elif command.startswith("mlflow ui"):
            port = free_port()
            with running_server(
                ["bash", "-c", f"{command} --port {port}"],
                f"http://127.0.0.1:{port}/health",
                env,
                tmp_path,
            ):
                page = subprocess.run(
                    ["curl", "-s", f"http://127.0.0.1:{port}/"], capture_output=True, text=True
                )
                assert "<html" in page.stdout.lower()
        elif command.startswith("mlflow models serve"):
            port = free_port()
            served = command.replace("-p 5001", f"-p {port}")
            assert served != command, "the README's serve port moved; update this test"
            servers["serve"] = (served, port)
        elif command.startswith("curl ") and "5001" in command:
            served, port = servers.pop("serve")
            with running_server(
                ["bash", "-c", served], f"http://127.0.0.1:{port}/ping", env, tmp_path
            ):
                answer = shell(command.replace("5001", str(port)), tmp_path, env)
            assert answer.returncode == 0, answer.stderr
            assert json.loads(answer.stdout) == json.loads(documented_answer())
        elif command.startswith("python -m pipeline."):
            train = command.startswith("python -m pipeline.train")
            extra = SHRINK_TRAIN if train else SHRINK
            result = shell(f"{command} {' '.join(extra)}", tmp_path, env)
            assert result.returncode == 0, f"{command}\n{result.stderr[-3000:]}"
            if not train and " -m " not in command.removeprefix("python -m"):
                lines = result.stdout.rstrip().splitlines()[-len(SUMMARY_LINES) :]
                assert all(ln.startswith(p) for ln, p in zip(lines, SUMMARY_LINES, strict=True))
        else:
            raise AssertionError(f"README command this test does not know how to run: {command}")
        ran.append(command)
    assert not servers, "a served model was never queried"
    assert len(ran) >= 8
    api_folder = tmp_path / "python-api"  # a study of its own: the example's settings differ
    api_folder.mkdir()
    run_python_example(api_folder, env)


def documented_answer() -> str:
    """The plain block right after the README's curl command: the answer it documents."""
    found = re.search(r"curl -X POST.*?```\n\n```\n(.*?)\n```", README.read_text(), flags=re.S)
    assert found, "the README documents no answer after its curl command"
    return found.group(1)


def run_python_example(folder: Path, env: dict) -> None:
    """The Python API example, verbatim."""
    (example,) = fenced_blocks(README.read_text(), "python")
    result = subprocess.run(
        [sys.executable, "-c", example],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    printed = result.stdout.strip().splitlines()[-1]
    # best_params, cv_mean, test_score, model_version
    assert re.fullmatch(r"\{'learning_rate': .*\} 0\.\d+ [01]\.\d+ \d+", printed), printed
