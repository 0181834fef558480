"""k-fold cross-validation in worker processes: the loky pool, what runs in a fold process, the
scheduler that shares the processes among the trials in flight, and cancelling a pruned trial's folds."""
