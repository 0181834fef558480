"""`python -m pipeline.train`: one configuration, a logged trial reproduced, the best-config file."""

from __future__ import annotations

import time

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from pipeline.config.checks import validate_train_config
from pipeline.config.from_run import BEST_CONFIG_NAME, best_config_yaml, flat_params, params_node
from pipeline.config.schema import register_configs
from pipeline.errors import UserInputError
from pipeline.tracking.store import connect
from tests.e2e.shared_sweep import finished_sweep
from tests.helpers import CONF_DIR, compose_config, run_cli

FAST_TRAIN = [
    "dataset=iris",
    "cv.folds=3",
    "cv.n_jobs=2",
    "params.learning_rate=0.05",
    "params.hidden_units=16",
    "params.hidden_layers=2",
    "params.iterations=30",
    "params.activation=tanh",
]
SHARED = ("dataset", "cv", "model", "tracking")


def compose_train(overrides=(), config_dir=CONF_DIR, name="train"):
    """Compose like `python -m pipeline.train`; a config_dir other than conf/ searches conf/ too."""
    register_configs()
    GlobalHydra.instance().clear()
    if config_dir != CONF_DIR:
        overrides = [f"hydra.searchpath=[file://{CONF_DIR}]", *overrides]
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            return compose(config_name=name, overrides=list(overrides))
    finally:
        GlobalHydra.instance().clear()


@pytest.mark.parametrize("overrides", [[], ["dataset=wine", "cv.folds=3", "model.solver=sgd"]])
def test_train_config_takes_the_sweep_settings(overrides):
    train, sweep = compose_train(overrides), compose_config(overrides)
    for key in SHARED:
        assert train[key] == sweep[key], key
    assert train.study.seed == sweep.study.seed
    assert set(train.params) == {
        "learning_rate",
        "hidden_units",
        "hidden_layers",
        "iterations",
        "activation",
    }


@pytest.mark.parametrize(
    "override, key",
    [
        ("params.activation=softmax", "params.activation"),
        ("params.learning_rate=0", "params.learning_rate"),
        ("params.hidden_units=[8]", "params.hidden_units"),  # 2 layers, 1 width
        ("params.iterations=0", "params.iterations"),
        ("cv.folds=1", "cv.folds"),
        ("study.seed=-1", "study.seed"),
        ("model.alpha=nan", "model.alpha"),
        ("params.learning_rate=inf", "params.learning_rate"),
        ("cv.test_size=1.5", "cv.test_size"),
    ],
)
def test_bad_values_name_the_key(override, key):
    cfg = compose_train([*FAST_TRAIN, override])
    with pytest.raises(UserInputError, match=rf"^{key}: "):
        validate_train_config(cfg)


def test_wrong_key_fails_at_composition():
    with pytest.raises(Exception, match="params.learning_rat"):
        compose_train(["params.learning_rat=0.1"])


@pytest.mark.parametrize(
    "flat",
    [
        {"learning_rate": 0.0123, "hidden_layers": 2, "hidden_units": 17, "iterations": 50,
         "activation": "relu"},
        {"learning_rate": 0.5, "hidden_layers": 3, "hidden_units_0": 9, "hidden_units_1": 4,
         "hidden_units_2": 30, "iterations": 10, "activation": "sigmoid"},
    ],
)  # fmt: skip
def test_params_node_round_trips_trial_params(flat):
    as_strings = {key: str(value) for key, value in flat.items()}  # as MLflow returns them
    assert flat_params(params_node(as_strings)) == flat


def test_best_config_file_composes_back_to_its_settings(tmp_path):
    settings = {
        "dataset": {"name": "csv", "path": "data/my.csv", "target": "label",
                    "task": "regression", "drop": ["id"], "categorical": ["zip"],
                    "max_categories": 30, "n_samples": 1000, "noise": 0.25},
        "study": {"seed": 7},
        "cv": {"folds": 4, "n_jobs": 1, "test_size": 0.3, "metric": "mae",
               "checkpoints": [5, 50]},
        "model": {"solver": "sgd", "batch_size": 32, "n_iter_no_change": None, "tol": 0.001,
                  "alpha": 0.001, "init": "he", "dtype": "float64"},
        "params": {"learning_rate": 0.03, "hidden_units": [12, 6], "hidden_layers": 2,
                   "iterations": 40, "activation": "leaky_relu"},
    }  # fmt: skip
    text = best_config_yaml(settings, "the best\nsecond line")
    assert text.startswith("# the best\n# second line\n")
    (tmp_path / f"{BEST_CONFIG_NAME}.yaml").write_text(text)
    cfg = compose_train(config_dir=tmp_path, name=BEST_CONFIG_NAME)
    assert OmegaConf.to_container(cfg, resolve=True) == {
        **settings,
        "tracking": OmegaConf.to_container(compose_train().tracking),
        "run_id": None,
    }
    validate_train_config(cfg)
    # Command-line overrides still apply on top of the file.
    assert compose_train(["cv.folds=5"], tmp_path, BEST_CONFIG_NAME).cv.folds == 5


@pytest.mark.slow  # four refused commands (tests/preloaded_cli.py)
def test_bad_input_exits_2_with_one_line(tmp_path, preloaded_cli):
    bad = preloaded_cli.run(["-m", "pipeline.train", "params.activation=softmax"], tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "error: params.activation: 'softmax' is not one of: identity, leaky_relu, relu, "
        "sigmoid, tanh"
    ]
    assert not (tmp_path / "mlruns").exists()  # refused before any store is touched
    misspelt = preloaded_cli.run(["-m", "pipeline.train", "params.learning_rat=0.1"], tmp_path)
    assert misspelt.returncode == 2
    (line,) = misspelt.stderr.strip().splitlines()
    assert line.startswith("error: params.learning_rat: no such key")
    no_store = preloaded_cli.run(["-m", "pipeline.train", "run_id=0123456789abcdef"], tmp_path)
    assert no_store.returncode == 2
    (line,) = no_store.stderr.strip().splitlines()
    assert line.startswith("error: tracking.uri=sqlite:///mlruns/mlflow.db: no such store")
    assert not (tmp_path / "mlruns").exists()  # looked up, not created
    connect(f"sqlite:///{tmp_path}/mlruns/mlflow.db", str(tmp_path / "mlruns/art"), "mlp-sweep")
    missing = preloaded_cli.run(["-m", "pipeline.train", "run_id=0123456789abcdef"], tmp_path)
    assert missing.returncode == 2
    assert "run_id=0123456789abcdef: no such run" in missing.stderr
    assert "Traceback" not in missing.stderr


@pytest.mark.slow  # refused commands (tests/preloaded_cli.py)
@pytest.mark.parametrize(
    "override, line",
    [
        ("study.seed=-1", "error: study.seed: must be an integer from 0 to 4294967295, got -1"),
        ("cv.test_size=0.01", "error: cv.test_size=0.01: the test split of dataset=iris would "
         "have 2 rows, fewer than its 3 classes; choose a cv.test_size that leaves each split at "
         "least one row per class"),
    ],
)  # fmt: skip
def test_values_the_sweep_refuses_are_refused_by_train_in_one_line(
    tmp_path, override, line, preloaded_cli
):
    result = preloaded_cli.run(["-m", "pipeline.train", "dataset=iris", override], tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [line]
    assert not (tmp_path / "mlruns").exists()


# --- end to end: the real CLI against real MLflow stores --------------------------------------


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return finished_sweep(tmp_path_factory)


def fold_scores(run) -> dict[str, float]:
    return {k: v for k, v in run.data.metrics.items() if k.startswith("fold_")}


def train_runs(client) -> set[str]:
    experiment = client.get_experiment_by_name("mlp-sweep")
    found = client.search_runs(
        [experiment.experiment_id], filter_string="tags.`mlp_sweep.role` = 'train'"
    )
    return {r.info.run_id for r in found}


@pytest.mark.slow
def test_train_one_configuration_logs_a_run_like_a_trial(tmp_path):
    from mlflow.tracking import MlflowClient

    result = run_cli(["-m", "pipeline.train", *FAST_TRAIN], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "CV accuracy" in result.stdout
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    (run_id,) = train_runs(client)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_id in result.stdout
    assert "mlflow.parentRunId" not in run.data.tags  # no study: a run of its own
    assert run.data.tags["optuna.state"] == "COMPLETE"
    assert run.data.params == {
        "learning_rate": "0.05",
        "hidden_units": "16",
        "hidden_layers": "2",
        "iterations": "30",
        "activation": "tanh",
        "solver": "adam",
        "batch_size": "200",
        "n_iter_no_change": "10",
        "tol": "0.0001",
        "alpha": "0.0",
        "init": "xavier",
        "dtype": "float32",
    }
    assert set(fold_scores(run)) == {"fold_0_accuracy", "fold_1_accuracy", "fold_2_accuracy"}
    assert 0.6 < run.data.metrics["cv_accuracy_mean"] <= 1.0
    # One step per epoch trained: the 30 of params.iterations at most (the loss may stall first).
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")]
    assert steps == list(range(len(steps))) and 10 < len(steps) <= 30
    # The folds' mean validation score at the checkpoint epochs they reached (cv.checkpoints).
    curve = client.get_metric_history(run.info.run_id, "valid_accuracy")
    assert [m.step for m in curve] == [10, 20] and all(0 < m.value <= 1 for m in curve)
    assert {"config.yaml", "model"} <= {a.path for a in client.list_artifacts(run.info.run_id)}


@pytest.mark.slow
def test_reproduce_a_sweep_trial_from_its_run_id(sweep, tmp_path):
    client = sweep.client()
    before = train_runs(client)
    trial = next(  # a complete trial: every fold recorded
        run
        for run in map(client.get_run, sweep.trial_run_ids)
        if run.data.tags["optuna.state"] == "COMPLETE"
    )
    result = run_cli(
        [
            "-m",
            "pipeline.train",
            f"run_id={trial.info.run_id}",
            f"tracking.uri={sweep.tracking_uri}",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "reproduced: all 3 recorded folds equal" in result.stdout
    (new_id,) = train_runs(client) - before
    new = client.get_run(new_id)
    assert new.data.tags["mlp_sweep.source_run"] == trial.info.run_id
    assert new.data.params == trial.data.params
    assert fold_scores(new) == fold_scores(trial)
    assert len(fold_scores(trial)) == 3
    # The printed table shows each fold next to its recorded score.
    for value in fold_scores(trial).values():
        assert f"{value:.6f}  {value:.6f}" in result.stdout


@pytest.mark.slow
def test_best_params_file_trains_the_best_trial_again(sweep, tmp_path):
    client = sweep.client()
    parent = client.get_run(sweep.parent_run_id)
    best_number = parent.data.tags["best.trial_number"]
    best = next(
        run
        for run in map(client.get_run, sweep.trial_run_ids)
        if run.data.tags["optuna.trial_number"] == best_number
    )
    folder = tmp_path / "best"
    client.download_artifacts(sweep.parent_run_id, f"{BEST_CONFIG_NAME}.yaml", str(folder))
    before = train_runs(client)
    result = run_cli(
        ["-m", "pipeline.train", "--config-dir", "best", "--config-name", BEST_CONFIG_NAME,
         f"tracking.uri={sweep.tracking_uri}"],
        tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (new_id,) = train_runs(client) - before
    new = client.get_run(new_id)
    assert new.data.params == best.data.params
    assert fold_scores(new) == fold_scores(best)
    assert new.data.metrics["cv_accuracy_mean"] == parent.data.metrics["best_cv_accuracy_mean"]


@pytest.mark.slow  # real CLI runs
def test_a_train_that_fails_writes_nothing_and_fails_fast(tmp_path):
    (tmp_path / "bad.csv").write_text("a,label\n1,0\n2,x\n3,\n")
    bad_csv = run_cli(
        ["-m", "pipeline.train", "dataset=csv", "dataset.path=bad.csv", "dataset.target=label"],
        tmp_path,
    )
    assert bad_csv.returncode == 2
    (line,) = bad_csv.stderr.strip().splitlines()
    assert line.startswith("error: dataset.path=bad.csv: column 'label' has missing values")
    assert not (tmp_path / "mlruns").exists()  # no store created for a command that failed
    assert not (tmp_path / "outputs").exists()  # nor Hydra's run folder
    started = time.monotonic()
    closed_port = run_cli(
        ["-m", "pipeline.train", "dataset=iris", "tracking.uri=postgresql://u:pw@127.0.0.1:1/db"],
        tmp_path,
    )
    assert time.monotonic() - started < 10
    assert closed_port.returncode == 2
    (line,) = closed_port.stderr.strip().splitlines()
    assert line.startswith("error: tracking.uri=postgresql://u:***@127.0.0.1:1/db: cannot open")


@pytest.mark.slow  # a real CLI run
def test_a_network_too_big_for_the_memory_is_refused_by_train_in_one_line(tmp_path):
    result = run_cli(
        ["-m", "pipeline.train", "dataset=iris", "params.hidden_units=1000000000"], tmp_path
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: params.hidden_units=1000000000: the largest network (1 layers")
    assert line.endswith("; lower params.hidden_units or params.hidden_layers")
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "outputs").exists()
