"""mlp-sweep's Hydra launcher (``hydra/launcher=forked``): Hydra finds launchers only in the
``hydra_plugins`` namespace package, so the launcher lives here, not in ``pipeline``."""
