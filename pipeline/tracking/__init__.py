"""The MLflow side: the store and experiment, the parent and trial runs, logged and registered
models, runs that a dead process left open, and logging overlapped with the next trial's folds."""

import os

# Copying a model's few files is instant; MLflow's per-copy progress bars only flood the terminal.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
