"""What the pruning bars of a trial cost as a study grows: kept from trial to trial, or drawn again.

    python benchmarks/bench_checkpoint_bars.py --trials 1000 10000

A journal study holds N complete trials, each with the scores of 2 folds at the 6 default
checkpoint epochs, as the sweep records them. Each of 20 further trials adds one complete trial
and takes a reserved one (which fills the study's per-ask cache, as the sweep's own take does),
then its bars are computed twice: by a pass over every complete trial
(:func:`pipeline.search.checkpoint_bars.bars_from`, as every trial did before) and from the
columns kept since the last trial (:class:`~pipeline.search.checkpoint_bars.CheckpointColumns`,
what the sweep does). Both must give the same bars. Optuna's own MedianPruner, asked between
folds, is timed for comparison: it reads every complete trial's intermediate values each time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from pipeline.compat import trials_seen_at_start
from pipeline.names import CHECKPOINT_SCORES_ATTR
from pipeline.search.checkpoint_bars import CheckpointColumns, CheckpointRule, bars_from
from pipeline.search.storage import open_storage

EPOCHS = (10, 20, 40, 80, 160, 320)  # cv.checkpoints' default
FOLDS, REPEATS = 2, 20
RULE = CheckpointRule(50.0, 5)  # the default median pruner's


def scored_trial(rng: np.random.Generator) -> optuna.trial.FrozenTrial:
    table = {str(epoch): [float(v) for v in rng.random(FOLDS)] for epoch in EPOCHS}
    return create_trial(
        params={"x": 0.5},
        distributions={"x": FloatDistribution(0, 1)},
        value=float(rng.random()),
        intermediate_values={fold: float(rng.random()) for fold in range(FOLDS)},
        user_attrs={CHECKPOINT_SCORES_ATTR: table},
    )


def measure(n_trials: int, folder: Path) -> tuple[float, float, float]:
    """Milliseconds per trial: the bars by a full pass, from the kept columns, one prune."""
    rng = np.random.default_rng(0)
    storage = open_storage(str(folder / f"{n_trials}.journal"), 10)
    study = optuna.create_study(
        storage=storage, direction="maximize", pruner=optuna.pruners.MedianPruner(5, 0)
    )
    study.add_trials([scored_trial(rng) for _ in range(n_trials)])
    columns = CheckpointColumns(EPOCHS, FOLDS)
    columns.look(study.get_trials(deepcopy=False))  # the columns of the sweep's earlier trials
    full = kept = prune = 0.0
    for _ in range(REPEATS):
        study.add_trial(scored_trial(rng))
        study.enqueue_trial({})
        trial = study.ask()
        trial.report(0.5, 0)
        start = time.perf_counter()
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        drawn = bars_from(complete, RULE, EPOCHS, FOLDS, maximize=True)
        full += time.perf_counter() - start
        start = time.perf_counter()
        columns.look(trials_seen_at_start(study))
        from_columns = columns.bars(RULE, maximize=True)
        kept += time.perf_counter() - start
        start = time.perf_counter()
        trial.should_prune()
        prune += time.perf_counter() - start
        if drawn != from_columns:
            sys.exit("the kept columns gave other bars than a full pass")
        study.tell(trial, state=TrialState.FAIL)
    return full / REPEATS * 1000, kept / REPEATS * 1000, prune / REPEATS * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[1000, 10000])
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    print("complete trials | bars, full pass | bars, kept columns | one MedianPruner.prune")
    with tempfile.TemporaryDirectory(prefix="bench-bars-") as tmp:
        for n_trials in args.trials:
            full, kept, prune = measure(n_trials, Path(tmp))
            print(f"{n_trials} | {full:.2f} ms | {kept:.2f} ms | {prune:.2f} ms", flush=True)


if __name__ == "__main__":
    main()
