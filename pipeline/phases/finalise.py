"""Phase 3 of a sweep: the fitting time logged, and in worker 0 the champion refitted, tested,
logged and registered, the report drawn, the summary printed and the parent run closed."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pipeline.config.schema import registered_model_name
from pipeline.config.settings import fixed_model_params
from pipeline.errors import UserInputError
from pipeline.folds.fitting_time import FittingTime
from pipeline.folds.pool import resolve_n_jobs
from pipeline.phases.prepare import PreparedSweep
from pipeline.redaction import redact

log = logging.getLogger(__name__)


def end_parent_run(prepared: PreparedSweep, error: BaseException) -> None:
    """Close the study's parent run after ``error`` ended the sweep: KILLED for Ctrl-C (by any
    worker), FAILED for anything else (by worker 0, which owns it), so that no exit leaves it
    RUNNING. Best effort: a store that cannot take the write (a full disk) is closed by the
    next start instead, and the error that ended the sweep is the one reported."""
    tracking = prepared.tracking
    interrupted = isinstance(error, KeyboardInterrupt)
    if not (interrupted or prepared.cfg.worker == 0):
        return
    try:
        client, _, parent_id = tracking.result()
        client.set_terminated(parent_id, status="KILLED" if interrupted else "FAILED")
    except Exception:
        log.debug("the parent run was not closed", exc_info=True)


def finalise(prepared: PreparedSweep, fitting: FittingTime):
    """Returns the :class:`~pipeline.results.summary.SweepSummary` (None for workers other than
    0). A study in which no trial completed raises :class:`UserInputError` after its summary."""
    # The store first: the tracking thread may still be importing MLflow, and importing its
    # modules here at the same time fails in MLflow's circular imports.
    client, experiment_id, parent_id = prepared.tracking.result()
    from pipeline.results.champion import FINISHING_STEPS, finalize
    from pipeline.results.summary import format_summary
    from pipeline.tracking.lost_runs import close_lost_runs
    from pipeline.tracking.runs import log_fitting_time

    cfg, study = prepared.cfg, prepared.study
    log_fitting_time(client, parent_id, fitting, cfg.worker)
    if cfg.worker != 0:
        return None
    close_lost_runs(study, client, experiment_id, parent_id)
    with finishing_bar(cfg.progress_bar, FINISHING_STEPS) as announce:
        summary = finalize(
            study,
            prepared.split,
            prepared.spec,
            fixed_params=fixed_model_params(cfg),
            seed=cfg.study.seed,
            uri=cfg.tracking.uri,
            parent_run_id=parent_id,
            registered_model=registered_model_name(cfg),
            processes=resolve_n_jobs(cfg.cv.n_jobs, cfg.cv.folds),
            announce=announce,
        )
    print(format_summary(summary, redact(cfg.tracking.uri), experiment_id))
    if summary.best_params is None:
        # Nothing to refit or register: the sweep failed, and says why in one line (exit 2);
        # the parent run is closed FAILED on the way out (end_parent_run).
        c = summary.counts
        raise UserInputError(
            f"search_space: no trial of study {study.study_name!r} completed ({c['failed']} "
            f"failed, {c['pruned']} pruned); see each trial's fail_reason, e.g. for divergence "
            "lower search_space.learning_rate.high"
        )
    client.set_terminated(parent_id, status="FINISHED")
    return summary


@contextmanager
def finishing_bar(enabled: bool, steps: tuple[str, ...]) -> Iterator[Callable[[str], None]]:
    """A bar of the ``steps`` after the last trial, named as each starts (``announce(step)``):
    the champion's refit, report and registration take seconds after the trials' bar is full.
    Gone once they are done, so the summary follows the trials' bar."""
    if not enabled:
        yield lambda step: None
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=len(steps), leave=False, bar_format="{desc} ({n}/{total})")

    def announce(step: str) -> None:
        bar.n = steps.index(step)
        bar.set_description_str(f"finishing: {step}")  # refreshes the bar

    try:
        yield announce
    finally:
        bar.close()
