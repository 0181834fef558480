"""The Optuna side: storage, the study and its resume checks, the trial budget across workers,
recovery of lost trials, the objective (one trial) and the loop that keeps two trials in flight."""
