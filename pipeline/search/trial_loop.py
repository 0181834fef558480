"""Trials two at a time: the next trial's folds take the processes the current one leaves idle.

``study.optimize`` runs one trial after another, so with 5 folds on 2 processes the fifth fold
of every complete trial runs alone and one core idles (a sixth of the trial's core time), and
both idle between two trials. Here the next trial is already asked, and a process that the
current trial cannot use takes the next trial's first fold (pipeline.folds.scheduler's
FoldScheduler: the oldest trial first, so the current one is never delayed).

Optuna's threads (``n_jobs=2``) would do the same, but a trial's parameters and pruning would
then depend on which thread gets there first. The events here come in a fixed order, so that
a seeded sweep still repeats itself:

- trial k+1 is asked (its parameters sampled) right after trial k-1 is told, before trial k
  is: the sampler always sees the same finished trials;
- trial k+1's results are reported to the pruner, in fold order, only after trial k is told.

The loop does what ``study.optimize`` did for the sweep: heartbeats and stale-trial checks on
storages with heartbeats, ``tell`` with the trial's state, the caught exceptions, the progress
bar; Ctrl-C stops it only while it waits for folds (requested meanwhile, the sweep's ``stop()``
asks for no new trial and the next wait stops), and ends the trials in flight as interrupted.
"""

from __future__ import annotations

import logging
import warnings
from collections import deque
from collections.abc import Callable

import optuna
from optuna.trial import TrialState

from pipeline.compat import study_storage
from pipeline.folds.fitting_time import FittingTime
from pipeline.folds.interruption import interruptible
from pipeline.folds.scheduler import FoldScheduler
from pipeline.search.budget import BudgetReached
from pipeline.search.heartbeats import Heartbeats
from pipeline.search.objective import TrialEvaluation

log = logging.getLogger(__name__)


def run_trials(
    study: optuna.Study,
    begin: Callable[[optuna.Trial], TrialEvaluation],
    *,
    n_trials: int,
    workers: int,
    catch: tuple[type[Exception], ...] = (),
    stop: Callable[[], bool] = lambda: False,
    in_flight: int = 2,
    progress_bar: bool = False,
) -> FittingTime:
    """Run up to ``n_trials`` trials of ``study``, ``in_flight`` at a time (1 = one by one).

    ``begin(trial)`` suggests a new trial's parameters and returns its
    :class:`~pipeline.search.objective.TrialEvaluation`; raising :class:`~pipeline.search.budget.BudgetReached`
    there ends the trial and the loop. ``stop()`` is asked before each new trial (True: ask no
    more). An exception of a trial that is not in ``catch`` ends the loop and is raised, after the
    other trial in flight has been ended too.

    Returns the folds' fit spans and the seconds of fitting thrown away (folds running when
    their trial was pruned or failed; :meth:`~pipeline.folds.scheduler.FoldScheduler.fitting_time`).
    """
    scheduler = FoldScheduler(workers)
    flight: deque[TrialEvaluation] = deque()
    asked, exhausted = 0, False
    bar = _progress_bar(n_trials) if progress_bar else None
    heartbeats = Heartbeats(study_storage(study))
    try:
        while True:
            while len(flight) < max(1, in_flight) and asked < n_trials and not exhausted:
                if stop():
                    exhausted = True
                    break
                heartbeats.fail_stale(study)
                trial = study.ask()
                asked += 1
                heartbeats.add(trial)
                try:
                    evaluation = begin(trial)
                except BudgetReached as over:
                    exhausted = True
                    _finish(study, trial, None, over, heartbeats, bar)
                    continue
                except BaseException as error:
                    _finish(study, trial, None, error, heartbeats, bar)
                    if isinstance(error, catch):
                        continue
                    raise
                flight.append(evaluation)
                scheduler.add(evaluation, evaluation.tasks)
                evaluation.open_run()  # its MLflow run, if the store is ready
            if not flight:
                return scheduler.fitting_time()
            current = flight[0]
            try:
                done = current.advance()
            except BaseException as error:  # pruned, diverged, crashed: the trial ends here
                flight.popleft()
                scheduler.remove(current)
                current.fail(error)
                _finish(study, current.trial, None, error, heartbeats, bar)
                if isinstance(error, (optuna.TrialPruned, *catch)):
                    continue
                raise
            if done:
                flight.popleft()
                scheduler.remove(current)
                value = current.complete()
                _finish(study, current.trial, value, None, heartbeats, bar)
                continue
            with interruptible():  # Ctrl-C stops the sweep only here, not mid-write to a store
                finished = scheduler.wait()
            if not finished:  # a fold neither running nor queued: would wait forever
                raise RuntimeError(f"trial {current.trial.number}: its folds were lost")
            for evaluation, result in finished:
                evaluation.receive(result)
            for evaluation in flight:
                evaluation.open_run()
    except BaseException as error:
        # Ctrl-C, or a trial's error raised above: the trials still in flight end with it.
        reason = error if isinstance(error, KeyboardInterrupt) else _Abandoned()
        while flight:
            evaluation = flight.popleft()
            scheduler.remove(evaluation)
            evaluation.fail(reason)
            _finish(study, evaluation.trial, None, reason, heartbeats, bar=None)
        raise
    finally:
        heartbeats.stop()
        if bar is not None:
            bar.close()


class _Abandoned(Exception):
    """Recorded on a trial in flight when another trial's error ends the loop."""

    def __repr__(self) -> str:
        return "abandoned: the sweep stopped on another trial's error"


def _finish(study, trial, value, error, heartbeats, bar) -> None:
    """Tell the trial's state to the study, then run the callbacks and move the bar."""
    heartbeats.remove(trial)
    if error is None:
        study.tell(trial, value)
    elif isinstance(error, optuna.TrialPruned):
        # Like study.optimize: the last reported fold score becomes the pruned trial's value.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, state=TrialState.FAIL)
        if not isinstance(error, KeyboardInterrupt):
            log.warning("Trial %d failed: %r", trial.number, error)
    if bar is not None:
        bar.update(1)
        try:
            best = study.best_trial
            bar.set_description(f"Best trial: {best.number}. Best value: {best.value:.6g}")
        except ValueError:  # no complete trial yet
            pass


def _progress_bar(total: int):
    from tqdm.auto import tqdm

    return tqdm(total=total)
