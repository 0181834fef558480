"""pipeline.search.newly_finished: successive looks at a study return each finished trial once,
however the trials finish (out of order over many workers, failed, pruned, running for long)."""

from __future__ import annotations

import numpy as np
import optuna
from optuna.trial import TrialState

from pipeline.search.newly_finished import NewlyFinished


def test_each_finished_trial_is_returned_once_and_the_running_are_listed():
    rng = np.random.default_rng(1)
    study = optuna.create_study()
    looks = NewlyFinished(horizon=60)
    returned: list[int] = []
    open_trials = []
    for _ in range(400):
        open_trials.append(study.ask())
        if len(open_trials) > 10 or rng.random() < 0.5:
            trial = open_trials.pop(int(rng.integers(len(open_trials))))
            state = [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL][rng.integers(3)]
            study.tell(trial, 1.0 if state == TrialState.COMPLETE else None, state=state)
        if rng.random() < 0.3:  # not every trial is followed by a look
            continue
        trials = study.get_trials(deepcopy=False)
        finished, unfinished = looks.look(trials)
        returned += [t.number for t in finished]
        assert all(t.state.is_finished() for t in finished)
        running = {t.number for t in trials if t.state == TrialState.RUNNING}
        recent = {n for n in running if n > trials[-1].number - looks.horizon}
        assert recent <= {t.number for t in unfinished} <= running
        assert len(looks.unseen) <= 11  # the running ones only: no pass grows with the study
    assert len(returned) == len(set(returned))
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED,
                                                    TrialState.FAIL))  # fmt: skip
    assert set(returned) <= {t.number for t in done}
    assert len(done) - len(returned) <= 10  # those told after the last look


def test_a_trial_unfinished_past_the_horizon_is_no_longer_looked_for():
    study = optuna.create_study()
    stuck = study.ask()  # its worker killed, no heartbeat to fail it
    looks = NewlyFinished(horizon=5)
    for _ in range(8):
        study.tell(study.ask(), 1.0)
        looks.look(study.get_trials(deepcopy=False))
    assert stuck.number not in looks.unseen
    study.tell(stuck, 1.0)
    assert looks.look(study.get_trials(deepcopy=False)) == ([], [])
