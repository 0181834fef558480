"""pipeline.compat: each private API we use, exercised against the installed library.

A test here fails when an upgrade of Optuna, Hydra, MLflow or Python moves or changes what
pipeline.compat reaches into; the fix then goes in that one module.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time

import optuna
import pytest
from hydra.core.utils import JobReturn, JobStatus
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from mlflow.tracking import MlflowClient
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.trial import TrialState

from pipeline import compat
from pipeline.search.budget import replaced_numbers


def test_study_storage_is_the_storage_the_study_was_opened_with():
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage)
    assert compat.study_storage(study) is storage


def test_trial_id_addresses_the_trial_in_its_storage():
    study = optuna.create_study()
    trial = study.ask()
    storage = compat.study_storage(study)
    storage.set_trial_user_attr(compat.trial_id(trial), "seen", True)
    assert study.trials[0].user_attrs == {"seen": True}
    frozen = study.trials[0]
    assert compat.trial_id(frozen) == compat.trial_id(trial)


def test_failed_trials_are_logged_under_the_named_optuna_logger(caplog):
    def objective(trial):
        raise ValueError("boom")

    with caplog.at_level(logging.WARNING, logger=compat.OPTUNA_TRIAL_LOGGER):
        optuna.create_study().optimize(objective, n_trials=1, catch=(ValueError,))
    assert any(r.name == compat.OPTUNA_TRIAL_LOGGER and "boom" in r.getMessage()
               for r in caplog.records)  # fmt: skip


def test_a_stale_trials_retry_is_marked_as_replacing_it(tmp_path):
    """The budget leaves out a trial that Optuna's heartbeat callback retried; it reads the
    marker as the callback's own (experimental) helper does."""
    storage = RDBStorage(
        f"sqlite:///{tmp_path}/optuna.db",
        heartbeat_interval=1,
        grace_period=1,
        heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
    )
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    storage.record_heartbeat(compat.trial_id(trial))
    time.sleep(2.2)
    fail_stale_trials(study)
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.FAIL, TrialState.WAITING]
    assert replaced_numbers(study.get_trials()) == {0}
    retry = study.get_trials()[1]
    with pytest.warns(optuna.exceptions.ExperimentalWarning):
        public = RetryHeartbeatStaleTrialCallback.retried_trial_number(retry)
    assert compat.retried_trial_number(retry) == public == 0
    assert compat.retried_trial_number(study.get_trials()[0]) is None


def test_pop_waiting_trial_takes_an_enqueued_trial_and_never_creates_one(tmp_path):
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "optuna.journal"))
    )
    study = optuna.create_study(storage=storage)
    assert compat.pop_waiting_trial(study) is None
    assert study.get_trials() == []
    study.enqueue_trial({}, user_attrs={"place": 0})
    # Another process's study object sees the same queue; only one of them takes the trial.
    other = optuna.load_study(study_name=study.study_name, storage=storage)
    trial, frozen, none_waiting_below = compat.pop_waiting_trial(study)
    assert none_waiting_below == 0
    assert compat.pop_waiting_trial(other) is None
    assert isinstance(trial, optuna.Trial) and frozen.user_attrs == {"place": 0}
    assert [t.state for t in study.get_trials()] == [TrialState.RUNNING]
    trial.suggest_float("x", 0, 1)  # a trial like study.ask()'s: the sampler suggests
    study.tell(trial, 1.0)
    assert [t.state for t in other.get_trials()] == [TrialState.COMPLETE]


def test_pop_waiting_trial_takes_the_lowest_waiting_from_the_number_given():
    """Reserved trials are taken lowest first, as Optuna's own pop does (a seeded sweep repeats
    itself); the number returned lets the next search skip the trials below it, and the cache
    the sampler reads shows the taken trial running."""
    study = optuna.create_study()
    for place in range(4):
        study.enqueue_trial({}, user_attrs={"place": place})
    first, _, below = compat.pop_waiting_trial(study)
    second, _, below = compat.pop_waiting_trial(study, below)
    assert (first.number, second.number, below) == (0, 1, 1)
    cached = study._get_trials(deepcopy=False, use_cache=True)
    assert [t.state for t in cached] == [TrialState.RUNNING] * 2 + [TrialState.WAITING] * 2
    study.tell(first, 1.0)
    study.enqueue_trial({}, user_attrs={"place": 0})  # a retry: a new trial, after the others
    numbers = [compat.pop_waiting_trial(study, below)[0].number for _ in range(3)]
    assert numbers == [2, 3, 4]
    assert compat.pop_waiting_trial(study, 0) is None
    assert [t.state for t in study.get_trials()].count(TrialState.WAITING) == 0


def test_the_sampler_view_sees_each_trials_trials_as_of_its_start_with_the_states_asked():
    """StudyTrialsView reads the study's per-ask cache of its trials, which ``pop_waiting_trial``
    (like ``ask``) empties: a trial's sampler sees every trial made before it (a cache left
    full would hide the trial told just before), with the states it asked for."""
    study = optuna.create_study()
    seen = []
    view = compat.StudyTrialsView(study, lambda trials, states: seen.append(states) or trials)
    for value in (1.0, 2.0):
        study.enqueue_trial({})
        trial, _, _ = compat.pop_waiting_trial(study)
        listed = view._get_trials(deepcopy=False, states=(TrialState.COMPLETE,), use_cache=False)
        assert [t.number for t in listed] == list(range(trial.number + 1))  # every trial
        study.tell(trial, value)
    assert seen == [(TrialState.COMPLETE,)] * 2


def test_hydra_args_parser_reads_a_command_line_as_hydra_does():
    args = compat.hydra_args_parser().parse_args(["-m", "--cfg", "job", "a=1", "b=[x,y]"])
    assert args.multirun and args.cfg == "job"
    assert args.overrides == ["a=1", "b=[x,y]"]


def test_split_sweep_overrides_gives_one_job_per_value():
    jobs = compat.split_sweep_overrides(["worker=range(3)", "dataset=iris"])
    assert jobs == [[f"worker={i}", "dataset=iris"] for i in range(3)]


def test_job_error_is_the_failed_jobs_exception_without_raising_it():
    error = RuntimeError("postgresql://u:secret@h/db")
    failed = JobReturn(status=JobStatus.FAILED, _return_value=error)
    assert compat.job_error(failed) is error
    assert compat.job_error(JobReturn(status=JobStatus.COMPLETED, _return_value=1.0)) is None


def test_run_exit_handlers_runs_them_before_an_immediate_exit(tmp_path):
    marker = tmp_path / "ran"
    code = (
        "import atexit, os\n"
        "from pipeline import compat\n"
        f"atexit.register(lambda: open({str(marker)!r}, 'w').write('yes'))\n"
        "compat.run_exit_handlers()\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert marker.read_text() == "yes"


def test_dispose_mlflow_engine_forgets_the_engine_of_a_store(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    assert uri in SqlAlchemyStore._engine_map
    assert compat.dispose_mlflow_engine(uri)
    assert uri not in SqlAlchemyStore._engine_map
    assert not compat.dispose_mlflow_engine(uri)


@pytest.mark.parametrize("module", ["pipeline.config.command_line", "pipeline.multirun"])
def test_the_early_modules_import_no_mlflow(module):
    """compat is imported by the command-line check, which runs before the heavy imports."""
    code = f"import sys, {module}; print('mlflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_distribution_change_refused_is_optunas_own_rule(tmp_path):
    """The resume check's rule is the storage's: what it calls refused, a resumed study's next
    trial cannot suggest; what it takes, the trial can."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    storage = f"sqlite:///{tmp_path}/optuna.db"
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    trial.suggest_categorical("a", ["x", "y"])
    trial.suggest_float("lr", 1e-3, 1, log=True)
    study.tell(trial, 0.5)
    old = study.trials[0].distributions
    assert compat.distribution_change_refused(old["a"], CategoricalDistribution(["x", "z"]))
    assert compat.distribution_change_refused(old["lr"], FloatDistribution(1e-3, 1))
    assert not compat.distribution_change_refused(old["lr"], FloatDistribution(1e-4, 10, log=True))
    resumed = optuna.load_study(study_name="s", storage=storage).ask()
    with pytest.raises(ValueError):
        resumed.suggest_categorical("a", ["x", "z"])
    resumed.suggest_float("lr", 1e-4, 10, log=True)  # a new range is taken
    with pytest.raises(ValueError):
        optuna.load_study(study_name="s", storage=storage).ask().suggest_float("lr", 1e-3, 1)
