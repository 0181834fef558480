"""Configuration: the typed schema Hydra composes, the one validation path every command runs
before any store is opened, the command-line check, the search space, a config rebuilt from a run."""
