"""Lost trials are found however their process died, on a real Optuna study."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

import optuna
from optuna.trial import TrialState

from pipeline.names import BUDGET_SLOT, FAIL_REASON, OWNER_HOST, OWNER_PID, RETRY_OF
from pipeline.search import recovery
from pipeline.search.recovery import (
    UNCLAIMED_SECONDS,
    owner_of,
    record_owner,
    recover_lost_trials,
    unclaimed,
)


def test_a_trial_taken_but_never_claimed_is_lost_only_after_the_grace(monkeypatch):
    """A worker killed between taking a reserved trial and recording its pid leaves a RUNNING
    trial with no owner and no heartbeat: found once it is older than the grace, re-enqueued in
    its place of the budget; a trial a live process owns is left alone."""
    study = optuna.create_study()
    study.enqueue_trial({}, user_attrs={BUDGET_SLOT: 7})
    taken = study.ask()  # the reserved trial, now RUNNING, no owner recorded
    owned = study.ask()
    record_owner(owned, worker=0)  # this very process: alive
    frozen = study.trials[taken.number]
    assert not unclaimed(frozen)  # just taken
    later = datetime.now() + timedelta(seconds=UNCLAIMED_SECONDS + 1)
    assert unclaimed(frozen, now=later)
    assert not unclaimed(study.trials[owned.number], now=later)
    assert recover_lost_trials(study) == []

    monkeypatch.setattr(recovery, "UNCLAIMED_SECONDS", 0.0)  # as if a minute had passed
    (lost,) = recover_lost_trials(study)
    assert lost.number == taken.number
    trials = study.get_trials(deepcopy=False)
    assert trials[taken.number].state == TrialState.FAIL
    assert trials[taken.number].user_attrs[FAIL_REASON].startswith("lost: no process recorded")
    assert trials[owned.number].state == TrialState.RUNNING
    (retry,) = [t for t in trials if t.state == TrialState.WAITING]
    assert retry.user_attrs[RETRY_OF] == taken.number and retry.user_attrs[BUDGET_SLOT] == 7


def test_a_trial_of_an_older_version_is_found_lost_by_its_separate_host_and_pid():
    """Versions before one owner attribute recorded the host and the pid apart: a study they
    left with a RUNNING trial of a dead process is still recovered, and a live one left."""
    import socket
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    study = optuna.create_study()
    dead, alive = study.ask(), study.ask()
    for trial, pid in ((dead, child.pid), (alive, os.getpid())):
        trial.set_user_attr(OWNER_HOST, socket.gethostname())
        trial.set_user_attr(OWNER_PID, pid)
    owner = owner_of(study.trials[dead.number])
    assert (owner.host, owner.pid, owner.worker) == (socket.gethostname(), child.pid, None)
    (lost,) = recover_lost_trials(study)
    assert lost.number == dead.number
    assert study.trials[alive.number].state == TrialState.RUNNING
