"""Test helpers: Hydra's compose API on the real conf/, small fast settings, CLI runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from pipeline.config.schema import register_configs

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"

# A sweep small enough for a test: few trials, short training, 3 folds on 2 processes.
FAST = [
    "study.n_trials=3",
    "cv.folds=3",
    "cv.n_jobs=2",
    "search_space.iterations.low=20",
    "search_space.iterations.high=40",
    "search_space.hidden_units.high=32",
    "search_space.hidden_layers.high=2",
    "progress_bar=false",
]

# A seeded sweep that must repeat itself trial for trial: TPE past its start-up trials and the
# default pruner past its own, both of which depend on which trials are finished when a trial is
# sampled or pruned, with two trials in flight (tests/e2e/test_sweep_e2e.py,
# benchmarks/repeat_seeded.py). 4 folds on 2 processes, not FAST's 3: with 3, every fold not yet
# handled is already running after the first, so the pruner is never asked.
SEEDED_SWEEP = [
    *(o for o in FAST if not o.startswith("cv.folds=")),
    "cv.folds=4",
    "dataset=iris",
    "study.n_trials=8",
    "study.seed=7",
    "sampler.n_startup_trials=3",
    "pruner=percentile",  # harsher than the default: it prunes, at checkpoints too, on iris
    "pruner.n_startup_trials=2",
]


# The plots a finished sweep's report leaves on its parent run (plots/<name>.png), which the UI
# tests, the report's tests and the browser tests all expect.
REPORT_PLOTS = (
    "optimization_history",
    "param_importances",
    "parallel_coordinate",
    "slice",
    "fold_spread",
    "champion_learning_curve",
    "champion_confusion_matrix",
)


def compose_config(overrides: list[str] | None = None):
    """Compose conf/config.yaml with overrides, as `python -m pipeline.sweep` would."""
    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose(config_name="config", overrides=overrides or [])
    finally:
        GlobalHydra.instance().clear()


def run_cli(args: list[str], cwd: Path, timeout: float = 300, env: dict | None = None):
    """Run `python -m pipeline.sweep ARGS` (or another module) for real, in ``cwd``."""
    command = args if args and args[0] == "-m" else ["-m", "pipeline.sweep", *args]
    return subprocess.run(
        [sys.executable, *command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
