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
from collections import deque
from collections.abc import Callable

import optuna
from optuna.trial import TrialState

from pipeline.compat import study_storage
from pipeline.folds.fitting_time import FittingTime
from pipeline.folds.scheduler import FoldScheduler
from pipeline.search.heartbeats import Heartbeats
from pipeline.search.objective import TrialEvaluation, drive_folds

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
    after_trial: Callable[[optuna.Trial, BaseException | None], None] | None = None,
    ask: Callable[[], optuna.Trial | None] | None = None,
) -> FittingTime:
    """Run up to ``n_trials`` trials of ``study``, ``in_flight`` at a time (1 = one by one).

    ``ask()`` gives the next trial, or None when there is none to run (the sweep's is
    :meth:`pipeline.search.budget.Reservations.take`; default ``study.ask``).
    ``begin(trial)`` suggests its parameters and returns its
    :class:`~pipeline.search.objective.TrialEvaluation`. ``stop()`` is asked before each new trial (True: ask no
    more). An exception of a trial that is not in ``catch`` ends the loop and is raised, after the
    other trial in flight has been ended too. ``after_trial(trial, error)`` is called once each
    trial is told (``error`` None for a complete one); what it raises ends the loop the same way.

    Returns the folds' fit spans and the seconds of fitting thrown away (folds running when
    their trial was pruned or failed; :meth:`~pipeline.folds.scheduler.FoldScheduler.fitting_time`).
    """
    flight = _Flight(study, workers, catch, _progress_bar(n_trials) if progress_bar else None)
    flight.after_trial = after_trial
    flight.ask = study.ask if ask is None else ask
    asked, exhausted = 0, False
    try:
        while True:
            while len(flight.trials) < max(1, in_flight) and asked < n_trials and not exhausted:
                if stop():
                    exhausted = True
                    break
                asked += 1
                exhausted = not flight.start(begin)
            if not flight.trials:
                return flight.scheduler.fitting_time()
            flight.end_oldest()
    except BaseException as error:
        flight.end_all(error)  # Ctrl-C, or a trial's error that ends the loop
        raise
    finally:
        flight.close()


class _Flight:
    """The trials in flight, oldest first, their folds on one scheduler; each told to the study
    as it ends."""

    def __init__(self, study: optuna.Study, workers: int, catch: tuple, bar):
        self.study, self.catch, self.bar = study, catch, bar
        self.scheduler = FoldScheduler(workers)
        self.trials: deque[TrialEvaluation] = deque()
        self.heartbeats = Heartbeats(study_storage(study))
        self.after_trial = None
        self.ask: Callable[[], optuna.Trial | None] = study.ask

    def start(self, begin: Callable[[optuna.Trial], TrialEvaluation]) -> bool:
        """Ask a trial and queue its folds; False when there is none (ask no more)."""
        self.heartbeats.fail_stale(self.study)
        trial = self.ask()
        if trial is None:
            return False
        self.heartbeats.add(trial)
        try:
            evaluation = begin(trial)
        except BaseException as error:
            self._finish(trial, None, error)
            if isinstance(error, self.catch):
                return True
            raise
        self.trials.append(evaluation)
        self.scheduler.add(evaluation, evaluation.tasks)
        evaluation.open_run()  # its MLflow run, if the store is ready
        return True

    def end_oldest(self) -> None:
        """Drive the folds until the oldest trial ends (complete, pruned or failed); tell it.

        Raises the trial's error unless it was pruned or its error is one of ``catch``.
        """
        oldest = self.trials[0]
        try:
            drive_folds(self.scheduler, self.trials)
        except BaseException as error:  # pruned, diverged, interrupted, crashed: it ends here
            self._remove(oldest)
            oldest.fail(error)
            self._finish(oldest.trial, None, error)
            if isinstance(error, (optuna.TrialPruned, *self.catch)):
                return
            raise
        self._remove(oldest)
        self._finish(oldest.trial, oldest.complete(), None)

    def end_all(self, error: BaseException) -> None:
        """End the trials still in flight: interrupted by Ctrl-C, or abandoned on another
        trial's error."""
        reason = error if isinstance(error, KeyboardInterrupt) else _Abandoned()
        while self.trials:
            evaluation = self.trials[0]
            self._remove(evaluation)
            evaluation.fail(reason)
            self._finish(evaluation.trial, None, reason, move_bar=False)

    def close(self) -> None:
        self.heartbeats.stop()
        if self.bar is not None:
            self.bar.close()

    def _remove(self, evaluation: TrialEvaluation) -> None:
        """Forget the trial: its folds not yet started never start, its running ones are
        cancelled at once."""
        self.trials.remove(evaluation)
        self.scheduler.remove(evaluation)

    def _finish(self, trial, value, error, move_bar: bool = True) -> None:
        """Tell the trial's state to the study, then move the bar."""
        self.heartbeats.remove(trial)
        if error is None:
            self.study.tell(trial, value)
        elif isinstance(error, optuna.TrialPruned):
            # Like study.optimize: the last reported fold score becomes the pruned trial's value.
            self.study.tell(trial, state=TrialState.PRUNED)
        else:
            self.study.tell(trial, state=TrialState.FAIL)
            if not isinstance(error, KeyboardInterrupt):
                log.warning("Trial %d failed: %r", trial.number, error)
        if self.bar is not None and move_bar:
            _show_progress(self.bar, self.study)
        if self.after_trial is not None and move_bar:
            self.after_trial(trial, error)


class _Abandoned(Exception):
    """Recorded on a trial in flight when another trial's error ends the loop."""

    def __repr__(self) -> str:
        return "abandoned: the sweep stopped on another trial's error"


def _show_progress(bar, study: optuna.Study) -> None:
    bar.update(1)
    try:
        best = study.best_trial
        bar.set_description(f"Best trial: {best.number}. Best value: {best.value:.6g}")
    except ValueError:  # no complete trial yet
        pass


def _progress_bar(total: int):
    from tqdm.auto import tqdm

    return tqdm(total=total)
