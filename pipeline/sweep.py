"""``python -m pipeline.sweep``: one command from a config to a tuned, tested, registered model.

Hydra composes ``conf/`` and the command line; :func:`run_sweep` does the work in three phases
(pipeline.phases: prepare, search, finalise). From Python, :func:`run` does the same for a list
of overrides. In a multirun (``-m worker='range(N)'``) every job is an Optuna worker on the same
study; worker 0 leads.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    # Before anything can print a URL given on the command line (--cfg job, a syntax error).
    from pipeline.redaction import redact_standard_streams

    redact_standard_streams()
    # The command line is checked before the heavy imports below (MLflow alone takes seconds):
    # Hydra would report a bad key or type over several lines from inside @hydra.main.
    from pipeline.config.command_line import exit_if_bad

    _checked = exit_if_bad(sys.argv[1:])
    if _checked is not None:
        # The fold processes start and import while this one imports scikit-learn, Optuna and
        # the rest: ready when the first folds come.
        from pipeline.folds.pool import start_fold_workers

        start_fold_workers(_checked.cv.n_jobs, _checked.cv.folds)

import json
from dataclasses import dataclass

import hydra
from omegaconf import DictConfig, OmegaConf

from pipeline.config.command_line import (
    SWEEP,
    compose_config,
    discard_hydra_output,
    exit_without_teardown,
    user_errors_as_one_line,
)
from pipeline.config.schema import register_configs
from pipeline.errors import UserInputError, disk_full_as_one_line
from pipeline.phases.finalise import end_parent_run, finalise
from pipeline.phases.prepare import prepare
from pipeline.phases.search import search
from pipeline.redaction import redact
from pipeline.search.core_turns import core_turn

register_configs()


@dataclass(frozen=True)
class SweepResult:
    """What a sweep found. For a worker other than 0 (which does not finalise) only the study
    name and the parent run are known."""

    study_name: str
    parent_run_id: str
    best_params: dict | None = None
    cv_mean: float | None = None
    cv_std: float | None = None
    test_score: float | None = None  # the champion's, on the held-out test split
    model_version: str | None = None  # of the registered champion
    metric: str | None = None  # cv.metric: what cv_mean, cv_std and test_score are in


def run(overrides: list[str] | None = None) -> SweepResult:
    """Run (or resume) a sweep from Python, as ``python -m pipeline.sweep OVERRIDES`` would.

    Never exits the process: a bad setting raises :class:`~pipeline.errors.UserInputError` (its
    one-line message names the key) before any store is opened; Ctrl-C raises
    ``KeyboardInterrupt`` once the finished trials are saved and the parent run is closed, and
    the same call resumes. Multirun stays the command line's.
    """
    return run_sweep(compose_config(list(overrides or []), SWEEP))


def run_sweep(cfg: DictConfig, refused=lambda: None) -> SweepResult:
    """Prepare, search and (in worker 0) finalise the study of ``cfg``. ``refused()`` is called
    when the preparation refuses the config, data or stores (nothing was written then)."""
    stores = f"study.storage={redact(cfg.study.storage)}, tracking.uri={redact(cfg.tracking.uri)}"
    with disk_full_as_one_line(stores):
        try:
            prepared = prepare(cfg)
        except UserInputError:
            refused()
            raise
        try:
            fitting = search(prepared)
            summary = finalise(prepared, fitting)
        except BaseException as error:
            end_parent_run(prepared, error)
            raise
    parent_run_id = prepared.tracking.result().parent_run_id
    if summary is None:
        return SweepResult(prepared.study.study_name, parent_run_id)
    return SweepResult(
        study_name=summary.study_name,
        parent_run_id=parent_run_id,
        best_params=summary.best_params,
        cv_mean=summary.cv_mean,
        cv_std=summary.cv_std,
        test_score=summary.test_score,
        model_version=summary.model_version,
        metric=summary.metric,
    )


def study_identity(cfg: DictConfig) -> str:
    """What the workers of one study share: their whole config but the worker's number."""
    shared = OmegaConf.to_container(cfg, resolve=False)
    shared.pop("worker", None)
    return json.dumps(shared, sort_keys=True, default=str)


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    try:
        # A local multirun's workers beyond the cores wait for a turn first; by then their
        # study may be over (its trials all run, or the multirun stopped by Ctrl-C).
        with core_turn(cfg.worker, study_identity(cfg)) as turn:
            if turn.study_over:
                return None
            try:
                with user_errors_as_one_line():
                    result = run_sweep(cfg, refused=lambda: discard_hydra_output("sweep"))
            finally:
                turn.mark_study_over()  # whatever ended it: nothing for a waiting worker
    except KeyboardInterrupt:
        print(
            "interrupted: finished trials are kept; rerun the same command to resume",
            file=sys.stderr,
        )
        sys.exit(130)
    return result.cv_mean


if __name__ == "__main__":
    main()
    exit_without_teardown()
