"""Every mistake of a user ends the real CLI with exit code 2, one line naming what to fix, and
nothing an earlier sweep wrote changed.

One tiny good sweep runs first (module fixture); each bad case then runs `python -m pipeline.sweep`
in the same folder, so it meets the same stores, and the study's trials, the MLflow runs and
registered versions and the bytes of every file under mlruns/ are compared with a snapshot.
Each case is a child forked from a process that has imported the project once
(tests/preloaded_cli.py): the imports took most of a case's time when each was a new interpreter.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from optuna.storages.journal import JournalFileBackend, JournalStorage

from tests.helpers import run_cli

pytestmark = pytest.mark.slow

STUDY = "iris-mlp"
GOOD = [
    "dataset=iris",
    "study.n_trials=2",
    "cv.folds=3",
    "cv.n_jobs=1",
    "search_space.iterations.low=10",
    "search_space.iterations.high=20",
    "search_space.hidden_units.high=16",
    "search_space.hidden_layers.high=1",
    "pruner=none",
    "progress_bar=false",
]
UNREACHABLE_POSTGRES = "postgresql://u:secret@127.0.0.1:1/db"


@dataclass
class Case:
    """One bad command: its overrides (on top of GOOD) and what its error line must contain."""

    id: str
    overrides: list[str]
    expect: list[str]
    files: dict[str, bytes] = field(default_factory=dict)  # written into the folder first

    def with_overrides(self, *overrides: str) -> Case:
        return Case(self.id, [*self.overrides, *overrides], self.expect, self.files)


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def frame(rows: int = 30, classes: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    data = pd.DataFrame(rng.normal(size=(rows, 3)), columns=["a", "b", "c"])
    data["label"] = np.arange(rows) % classes
    return data


def with_value(column: str, row: int, value) -> pd.DataFrame:
    data = frame()
    data[column] = data[column].astype(object)
    data.loc[row, column] = value
    return data


def csv(path: str, target: str = "label") -> list[str]:
    return ["dataset=csv", f"dataset.path={path}", f"dataset.target={target}"]


rare = frame(40, 3)
rare.loc[rare.index[-4:], "label"] = 7  # class 7 has 4 members: fewer than 5 folds after the split

CASES = [
    # config: types, unknown keys, syntax
    Case("folds-not-int", ["cv.folds=abc"], ["cv.folds=abc", "Integer"]),
    Case("trials-float", ["study.n_trials=1.5"], ["study.n_trials=1.5"]),
    Case("bounds-wrong-type", ["search_space.hidden_units.low=wide"], ["hidden_units.low"]),
    Case("unknown-key", ["cv.foldz=3"], ["cv.foldz", "no such key"]),
    Case("override-syntax", ["cv.folds=[1,"], ["cv.folds"]),
    # config: ranges and bounds
    Case("folds-1", ["cv.folds=1"], ["cv.folds", ">= 2"]),
    Case("trials-0", ["study.n_trials=0"], ["study.n_trials", ">= 1"]),
    Case("units-0", ["search_space.hidden_units.low=0"], ["search_space.hidden_units.low"]),
    Case("layers-negative", ["search_space.hidden_layers.low=-1"], ["hidden_layers.low"]),
    Case(
        "iterations-inverted",
        ["search_space.iterations.low=50", "search_space.iterations.high=10"],
        ["search_space.iterations", "swap"],
    ),
    Case("log-low-0", ["search_space.learning_rate.low=0"], ["search_space.learning_rate.low"]),
    Case("lr-negative", ["search_space.learning_rate.low=-0.1"], ["learning_rate.low"]),
    Case("test-size-1.5", ["cv.test_size=1.5"], ["cv.test_size"]),
    Case("moons-no-samples", ["dataset=moons", "dataset.n_samples=0"], ["dataset.n_samples"]),
    # config: unknown names, empty search space
    Case("unknown-dataset", ["dataset=mnist"], ["dataset=mnist", "iris"]),
    Case("unknown-activation", ["search_space.activation.choices=[relu,swish]"], ["swish"]),
    Case("unknown-sampler", ["sampler=annealing"], ["sampler=annealing", "tpe"]),
    Case("unknown-pruner", ["pruner=early"], ["pruner=early", "median"]),
    Case("unknown-direction", ["study.direction=sideways"], ["study.direction", "maximize"]),
    Case("three-in-flight", ["study.trials_in_flight=3"], ["study.trials_in_flight", "1 or 2"]),
    Case("unknown-solver", ["model.solver=rmsprop"], ["model.solver", "adam"]),
    Case("batch-with-gd", ["model.solver=gd", "model.batch_size=16"], ["model.batch_size", "sgd"]),
    Case("gd-with-default-batch", ["model.solver=gd"], ["model.batch_size=null", "full-batch"]),
    Case("no-change-zero", ["model.n_iter_no_change=0"], ["model.n_iter_no_change", ">= 1"]),
    Case("negative-tol", ["model.tol=-0.1"], ["model.tol: must be >= 0"]),
    Case("checkpoints-unordered", ["cv.checkpoints=[20,10]"], ["cv.checkpoints", "increasing"]),
    Case("checkpoints-zero", ["cv.checkpoints=[0,10]"], ["cv.checkpoints", ">= 1"]),
    Case("empty-activations", ["search_space.activation.choices=[]"], ["activation.choices"]),
    Case("csv-without-path", ["dataset=csv"], ["dataset.path", "required"]),
    # data
    Case("missing-file", csv("nothere.csv"), ["dataset.path=nothere.csv", "not found"]),
    Case("folder-as-file", csv("adir"), ["dataset.path=adir", "folder"], {"adir/x": b""}),
    Case(
        "binary-file",
        csv("blob.csv"),
        ["dataset.path=blob.csv"],
        {"blob.csv": bytes(range(256)) * 8},
    ),
    Case("empty-csv", csv("empty.csv"), ["dataset.path=empty.csv", "empty"], {"empty.csv": b""}),
    Case("header-only", csv("head.csv"), ["head.csv", "no data rows"], {"head.csv": b"a,label\n"}),
    Case(
        "missing-target",
        csv("t.csv", "class"),
        ["dataset.target=class", "label"],
        {"t.csv": csv_bytes(frame())},
    ),
    Case(
        "text-with-many-values",
        csv("s.csv"),
        ["s.csv", "'b'", "30 distinct texts", "dataset.max_categories=20", "dataset.drop=[b]"],
        {"s.csv": csv_bytes(with_value("b", 3, "high"))},
    ).with_overrides("dataset.max_categories=20"),
    Case(
        "column-without-values",
        csv("n.csv"),
        ["n.csv", "'c'", "no values", "dataset.drop=[c]"],
        {"n.csv": b"a,c,label\n" + b"".join(b"%d,,%d\n" % (i, i % 2) for i in range(30))},
    ),
    Case(
        "inf",
        csv("i.csv"),
        ["i.csv", "'a'", "infinite"],
        {"i.csv": csv_bytes(with_value("a", 5, float("inf")))},
    ),
    Case(
        "float-labels-as-classes",
        [*csv("f.csv"), "dataset.task=classification"],
        ["f.csv", "'label'", "non-integer", "0.5", "dataset.task=regression"],
        {
            "f.csv": b"a,b,label\n"
            + b"".join(b"%d,%d,%s\n" % (i, -i, [b"1", b"0.5"][i % 2]) for i in range(30))
        },
    ),
    Case(
        "semicolons",
        csv("semi.csv"),
        ["dataset.target=label", "comma-separated"],
        {"semi.csv": b"a;b;label\n" + b"".join(b"%d;%d;%d\n" % (i, -i, i % 2) for i in range(30))},
    ),
    Case(
        "single-class",
        csv("one.csv"),
        ["one.csv", "label", "one class"],
        {"one.csv": csv_bytes(frame(20, 1))},
    ),
    Case(
        "folds-above-smallest-class",
        [*csv("rare.csv"), "cv.folds=5"],
        ["cv.folds=5", "class '7'", "rare.csv"],
        {"rare.csv": csv_bytes(rare)},
    ),
    # environment
    Case(
        "storage-under-file",
        ["study.storage=afile/sub/optuna.journal"],
        ["study.storage=afile/sub/optuna.journal", "is a file"],
        {"afile": b"x"},
    ),
    Case("storage-is-folder", ["study.storage=mlruns"], ["study.storage=mlruns", "folder"]),
    Case(
        "tracking-under-file",
        ["tracking.uri=sqlite:///afile2/mlflow.db", "study.name=elsewhere"],
        ["tracking.uri=sqlite:///afile2/mlflow.db", "is a file"],
        {"afile2": b"x"},
    ),
    Case(
        "tracking-not-a-database",
        ["tracking.uri=sqlite:///junk.db", "study.name=junk"],
        ["tracking.uri=sqlite:///junk.db", "not an SQLite database"],
        {"junk.db": b"not a database, " * 64},
    ),
    Case(
        "artifacts-under-file",
        ["tracking.artifact_location=afile3/art", "tracking.experiment=other"],
        ["tracking.artifact_location=afile3/art", "is a file"],
        {"afile3": b"x"},
    ),
    Case(
        "storage-unreachable",
        [f"study.storage={UNREACHABLE_POSTGRES}"],
        ["study.storage=postgresql://u:***@127.0.0.1:1/db", "cannot open"],
    ),
    Case(
        "tracking-unknown-scheme",
        ["tracking.uri=bogus://u:secret@host/x"],
        ["tracking.uri=bogus://u:***@host/x", "'bogus'", "sqlite:///"],
    ),
    Case("tracking-file-store", ["tracking.uri=mlruns"], ["tracking.uri=mlruns", "file store"]),
    Case(
        "artifacts-unknown-scheme",
        ["tracking.artifact_location=bogus://bucket", "tracking.experiment=other2"],
        ["tracking.artifact_location=bogus://bucket", "'bogus'"],
    ),
    Case(
        "registered-model-name",
        ["tracking.registered_model=champ/1"],
        ["tracking.registered_model=champ/1", "'/'"],
    ),
    Case("empty-experiment", ["tracking.experiment="], ["tracking.experiment"]),
    Case(
        "tracking-unreachable",
        [f"tracking.uri={UNREACHABLE_POSTGRES}"],
        ["tracking.uri=postgresql://u:***@127.0.0.1:1/db", "cannot open"],
    ),
    Case(
        "resume-other-folds",
        ["cv.folds=4"],
        ["cv.folds=4", "study 'iris-mlp' was made with cv.folds=3", "study.name"],
    ),
    Case(
        "direction-against-metric",
        ["study.direction=minimize"],
        ["study.direction=minimize", "cv.metric=accuracy is to maximize", "unset"],
    ),
]


def optuna_database_bytes() -> bytes:
    """An SQLite file that Optuna made (its tables), to be offered to MLflow by mistake."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "optuna.db"
        optuna.create_study(storage=f"sqlite:///{path}", study_name="other")
        return path.read_bytes()


with_copy = frame()
with_copy["copy"] = with_copy["label"].astype(float)  # the target again, as floats
FINITE = "must be a finite number"
SPACE_CHANGED = "Optuna cannot change that within a study"

# Round two: values that passed every check, files that are not what they seem, resuming with
# a search space Optuna cannot take, stores that belong to the other tool.
CASES += [
    Case("nan-alpha", ["model.alpha=nan"], [f"model.alpha: {FINITE}, got nan"]),
    Case("inf-alpha", ["model.alpha=inf"], [f"model.alpha: {FINITE}, got inf"]),
    Case("inf-lr-high", ["search_space.learning_rate.high=inf"], [f"learning_rate.high: {FINITE}"]),
    Case("nan-lr-low", ["search_space.learning_rate.low=nan"], [f"learning_rate.low: {FINITE}"]),
    Case("nan-test-size", ["cv.test_size=nan"], [f"cv.test_size: {FINITE}"]),
    Case("nan-noise", ["dataset=moons", "dataset.noise=nan"], [f"dataset.noise: {FINITE}"]),
    Case("inf-leader-wait", ["study.leader_wait_seconds=-inf"], ["leader_wait_seconds", FINITE]),
    Case("seed-negative", ["study.seed=-1"], ["study.seed: must be an integer from 0 to"]),
    Case("seed-too-large", ["study.seed=4294967296"], ["study.seed", "got 4294967296"]),
    Case(
        "test-split-too-small",
        ["cv.test_size=0.01"],
        ["cv.test_size=0.01: the test split of dataset=iris would have 2 rows", "3 classes"],
    ),
    Case("training-split-too-small", ["cv.test_size=0.99"], ["cv.test_size=0.99", "training"]),
    Case("plus-unknown-key", ["+foo=1"], ["+foo=1: no such key 'foo'"]),
    Case("plus-unknown-nested", ["+study.colour=red"], ["no such key 'study.colour'"]),
    Case("plus-unknown-model", ["+model.momentum=0.9"], ["no such key 'model.momentum'"]),
    Case("force-add-unknown", ["++cv.bogus=1"], ["++cv.bogus=1: no such key 'cv.bogus'"]),
    Case(
        "csv-repeated-column",
        csv("dup.csv"),
        ["dup.csv", "column name 'a' appears 2 times"],
        {
            "dup.csv": b"a,a,b,label\n"
            + b"".join(b"%d,%d,1,%d\n" % (i, i, i % 3) for i in range(30))
        },
    ),
    Case(
        "csv-repeated-target",
        csv("duptarget.csv"),
        ["duptarget.csv", "column name 'label' appears 2 times"],
        {
            "duptarget.csv": b"label,a,label\n"
            + b"".join(b"%d,%d,%d\n" % (i % 3, i, i % 3) for i in range(30))
        },
    ),
    Case(
        "csv-target-copy",
        csv("copy.csv"),
        ["copy.csv", "column 'copy' holds the target 'label' again"],
        {"copy.csv": csv_bytes(with_copy)},
    ),
    Case(
        "storage-foreign-text",
        ["study.storage=notes.txt"],
        ["study.storage=notes.txt: not an Optuna journal file"],
        {"notes.txt": b"shopping list\neggs\n"},
    ),
    Case(
        "storage-foreign-binary",
        ["study.storage=picture.png"],
        ["study.storage=picture.png: not an Optuna journal file"],
        {"picture.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256))},
    ),
    Case(
        "storage-is-a-csv",
        ["study.storage=data.csv"],
        ["study.storage=data.csv: not an Optuna journal file"],
        {"data.csv": csv_bytes(frame())},
    ),
    Case(
        "tracking-is-optuna-database",
        ["tracking.uri=sqlite:///optuna_made.db", "study.name=o1"],
        ["tracking.uri=sqlite:///optuna_made.db: is Optuna's database"],
        {"optuna_made.db": optuna_database_bytes()},
    ),
    Case(
        "storage-is-mlflow-database",
        ["study.storage=sqlite:///mlruns/mlflow.db", "tracking.uri=sqlite:///elsewhere.db"],
        ["study.storage=sqlite:///mlruns/mlflow.db: is MLflow's database"],
    ),
    Case(
        "tracking-server-down",
        ["tracking.uri=http://127.0.0.1:1"],
        ["tracking.uri=http://127.0.0.1:1: no MLflow server answers"],
    ),
    Case(
        "tracking-server-down-password",
        ["tracking.uri=http://u:secret@127.0.0.1:1/mlflow"],
        ["tracking.uri=http://u:***@127.0.0.1:1/mlflow: no MLflow server answers"],
    ),
    Case(
        "space-changed-choices",
        ["search_space.activation.choices=[relu,tanh]"],
        ["search_space.activation.choices: study 'iris-mlp' was searched with", SPACE_CHANGED],
    ),
    Case(
        "space-changed-log-lr",
        ["search_space.learning_rate.log=false"],
        ["search_space.learning_rate:", "log=True, not log=False", SPACE_CHANGED],
    ),
    Case(
        "space-changed-log-units",
        ["search_space.hidden_units.log=false"],
        ["search_space.hidden_units:", "log=True, not log=False", SPACE_CHANGED],
    ),
    Case(
        "network-too-wide",
        ["search_space.hidden_units.high=1000000000"],
        ["search_space.hidden_units.high=1000000000: the largest network", "GiB"],
    ),
    Case(
        "network-too-deep-and-wide",
        ["search_space.hidden_layers.high=40", "search_space.hidden_units.high=200000"],
        ["search_space.hidden_units.high=200000: the largest network (40 layers"],
    ),
    Case(
        "max-failures-negative",
        ["study.max_failures_in_a_row=-1"],
        ["study.max_failures_in_a_row: must be >= 0"],
    ),
]


def parquet_bytes(data: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    data.to_parquet(buffer)
    return buffer.getvalue()


texts = frame()
texts["label"] = np.array(["cat", "dog", "owl"])[np.arange(30) % 3]
flat = frame()
flat["label"] = 2.5  # a regression target with one value
# 3 classes of 40 rows, class 2 with 6: stratified, a test split of 4 rows gets none of it.
scarce = frame(40, 2)
scarce.loc[scarce.index[-6:], "label"] = 2

# Round three: regression, metrics, tables of any columns.
CASES += [
    Case("unknown-metric", ["cv.metric=auc"], ["cv.metric", "'auc' is not one of", "roc_auc"]),
    Case(
        "metric-of-other-task",
        ["cv.metric=rmse"],
        ["cv.metric=rmse: scores a regression", "dataset=iris is a classification", "accuracy"],
    ),
    Case(
        "regression-metric-on-classes",
        [*csv("txt.csv"), "cv.metric=r2"],
        ["cv.metric=r2", "column 'label' of txt.csv is a classification"],
        {"txt.csv": csv_bytes(texts)},
    ),
    Case(
        "classification-metric-on-values",
        ["dataset=diabetes", "cv.metric=log_loss"],
        ["cv.metric=log_loss: scores a classification", "rmse, mae, r2"],
    ),
    Case("unknown-task", ["dataset.task=clustering"], ["dataset.task", "'clustering'"]),
    Case(
        "text-target-as-regression",
        [*csv("txt2.csv"), "dataset.task=regression"],
        ["txt2.csv", "'label'", "holds text ('cat')", "regression target"],
        {"txt2.csv": csv_bytes(texts)},
    ),
    Case(
        "constant-regression-target",
        csv("flat.csv"),
        ["flat.csv", "'label'", "one value ('2.5')"],
        {"flat.csv": csv_bytes(flat)},
    ),
    Case(
        "drop-unknown-column",
        [*csv("d.csv"), "dataset.drop=[id]"],
        ["dataset.drop: no column 'id' in d.csv", "a, b, c, label"],
        {"d.csv": csv_bytes(frame())},
    ),
    Case(
        "categorical-unknown-column",
        [*csv("d2.csv"), "dataset.categorical=[zip]"],
        ["dataset.categorical: no column 'zip' in d2.csv"],
        {"d2.csv": csv_bytes(frame())},
    ),
    Case(
        "drop-the-target",
        [*csv("d3.csv"), "dataset.drop=[label]"],
        ["dataset.drop: names the target column 'label'"],
        {"d3.csv": csv_bytes(frame())},
    ),
    Case(
        "drop-on-a-bundled-set",
        ["dataset.drop=[x]"],
        ["dataset.drop: names columns of a file; dataset=iris has none"],
    ),
    Case(
        "not-a-parquet-file",
        ["dataset=parquet", "dataset.path=fake.parquet", "dataset.target=label"],
        ["dataset.path=fake.parquet: cannot be read as Parquet", "PAR1"],
        {"fake.parquet": csv_bytes(frame())},
    ),
    Case(
        "parquet-read-as-csv",
        csv("real.parquet"),
        ["dataset.path=real.parquet: cannot be read as CSV", "use dataset=parquet"],
        {"real.parquet": parquet_bytes(frame())},
    ),
    Case(
        "parquet-unknown-target",
        ["dataset=parquet", "dataset.path=real2.parquet", "dataset.target=price"],
        ["dataset.target=price: no such column in real2.parquet"],
        {"real2.parquet": parquet_bytes(frame())},
    ),
    Case(
        "roc-auc-class-missing-from-test",
        [*csv("scarce.csv"), "cv.metric=roc_auc", "cv.test_size=0.1"],
        ["cv.metric=roc_auc: the test split of column 'label' of scarce.csv", "class '2'"],
        {"scarce.csv": csv_bytes(scarce)},
    ),
    Case(
        "resume-other-metric",
        ["cv.metric=balanced_accuracy"],
        ["cv.metric=balanced_accuracy: study 'iris-mlp' was made with cv.metric=accuracy"],
    ),
    Case(
        "max-categories-0", ["dataset.max_categories=0"], ["dataset.max_categories: must be >= 1"]
    ),
    Case(
        "huge-feature-values",
        csv("huge.csv"),
        ["huge.csv", "column 'b'", "too large to standardise", "e+300"],
        {"huge.csv": csv_bytes(frame().assign(b=lambda d: d["b"] * 1e300))},
    ),
    Case(
        "huge-regression-target",
        csv("hugetarget.csv", "a"),
        ["column 'a' of hugetarget.csv", "too large to standardise"],
        {"hugetarget.csv": csv_bytes(frame().assign(a=lambda d: d["a"] * 1e300))},
    ),
]


def snapshot(folder) -> dict:
    """What the good sweep left: trials, runs, registered versions, bytes of mlruns/."""
    storage = JournalStorage(JournalFileBackend(str(folder / "mlruns" / "optuna.journal")))
    studies = {
        s.study_name: [
            (t.number, t.state, t.params, t.value, t.user_attrs)
            for t in optuna.load_study(study_name=s.study_name, storage=storage).trials
        ]
        for s in optuna.get_all_study_summaries(storage)
    }
    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}")
    experiments = client.search_experiments()
    runs = client.search_runs([e.experiment_id for e in experiments])
    versions = client.search_model_versions()
    files = {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((folder / "mlruns").rglob("*"))
        if p.is_file()
    }
    outputs = sorted(str(p.relative_to(folder)) for p in (folder / "outputs").rglob("*"))
    return {
        "outputs": outputs,  # Hydra's run folders: a refused command leaves none
        "studies": studies,
        "experiments": sorted(e.name for e in experiments),
        "runs": sorted((r.info.run_id, r.info.status, r.info.end_time) for r in runs),
        "versions": sorted((v.name, v.version, tuple(v.aliases)) for v in versions),
        "files": files,
    }


@pytest.fixture(scope="module")
def swept(tmp_path_factory, preloaded_cli):
    folder = tmp_path_factory.mktemp("bad-input")
    result = run_cli(GOOD, folder)
    assert result.returncode == 0, result.stderr[-3000:]
    for case in CASES:
        for name, content in case.files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(content)
    before = snapshot(folder)
    assert len(before["studies"][STUDY]) == 2 and len(before["runs"]) == 3
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = dict(
            zip(
                [c.id for c in CASES],
                pool.map(lambda c: preloaded_cli.run([*GOOD, *c.overrides], folder), CASES),
                strict=True,
            )
        )
    return folder, before, results


def test_enough_cases():
    assert len(CASES) >= 95
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_gives_one_line(swept, case):
    _, _, results = swept
    result = results[case.id]
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    line = lines[0]
    assert line.startswith("error: ")
    for fragment in case.expect:
        assert fragment in line, line
    assert "secret" not in line


def test_earlier_sweep_is_unchanged(swept):
    folder, before, _ = swept
    assert snapshot(folder) == before


def test_full_error_shows_the_traceback(swept):
    folder, _, _ = swept
    result = run_cli([*GOOD, "cv.folds=1"], folder, env={"HYDRA_FULL_ERROR": "1"})
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "cv.folds" in result.stderr


def test_sweep_writes_no_pickle(swept):
    folder, before, _ = swept
    assert any(name.endswith(".npz") for name in before["files"])  # models were written
    assert not [name for name in before["files"] if name.endswith((".pkl", ".pickle"))]
