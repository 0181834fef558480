"""Keep credentials of storage and tracking URLs out of logs, terminal output and MLflow."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from pipeline.compat import job_error

# scheme://user:password@host -> scheme://user:***@host, also as Hydra's launchers print an
# override (``postgresql\://user\:password@host``). A password written as an OmegaConf
# interpolation (``${oc.env:VAR}``) is not a secret and stays readable.
_URL_PASSWORD = re.compile(
    r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*\\?://[^:/@\s\\]*\\?:)(?!\$\\?\{)[^@\s]*@"
)


def redact(text: str) -> str:
    """Replace the password part of every URL in ``text`` with ``***``."""
    return _URL_PASSWORD.sub(r"\g<head>***@", text)


def redact_log_records() -> None:
    """Mask URL passwords in every log record this process makes from now on.

    A record factory, not a handler filter: Hydra's launchers configure logging again when
    they launch (new handlers), and Optuna has its own handler; the factory sees every record.
    """
    factory = logging.getLogRecordFactory()
    if getattr(factory, "redacts", False):
        return

    def make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, ()
        return record

    make_record.redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(make_record)


def redact_file(path: Path) -> None:
    """Mask URL passwords in a text file in place (Hydra's saved config and overrides)."""
    try:
        text = path.read_text()
    except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError):
        return
    masked = redact(text)
    if masked != text:
        path.write_text(masked)


class RedactionCallback(Callback):
    """Keeps passwords given on the command line out of what Hydra itself writes and prints.

    Hydra saves the composed config and the overrides under ``<output>/.hydra/`` (and
    ``multirun.yaml`` in a sweep folder) unresolved, logs each job's overrides when it launches
    them, and prints them when a job fails. A password written as ``${oc.env:VAR}`` never
    reaches any of these; a literal one is masked here after the fact and warned about, because
    submitit's job pickles (``.submitit/``) must carry it for the job to run.
    Registered in ``conf/config.yaml`` under ``hydra.callbacks``.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        redact_log_records()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        redact_log_records()
        _warn_about_literal_passwords(config)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        redact_log_records()
        if config.hydra.output_subdir is not None:
            folder = Path(config.hydra.runtime.output_dir) / str(config.hydra.output_subdir)
            for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
                redact_file(folder / name)
        if config.hydra.mode is not None and config.hydra.mode.name == "MULTIRUN":
            redact_file(Path(str(config.hydra.sweep.dir)) / "multirun.yaml")
        else:
            _warn_about_literal_passwords(config)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        # Hydra prints a failed job's overrides and its exception; mask both before it does.
        job_return.overrides = [redact(str(o)) for o in job_return.overrides or []]
        error = job_error(job_return)
        if error is not None:
            error.args = tuple(redact(a) if isinstance(a, str) else a for a in error.args)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        redact_file(Path(str(config.hydra.sweep.dir)) / "multirun.yaml")


def _warn_about_literal_passwords(config: DictConfig) -> None:
    overrides = [str(o) for o in config.hydra.overrides.task]
    keys = [o.split("=", 1)[0] for o in overrides if redact(o) != o]  # interpolations pass
    if keys:
        logging.getLogger(__name__).warning(
            "%s: a password on the command line is masked in logs and Hydra's files, but it "
            "is better passed from the environment: PGPASSWORD for PostgreSQL, "
            "MLFLOW_TRACKING_PASSWORD for an MLflow server, or '...:${oc.env:VAR}@...' in the URL",
            ", ".join(keys),
        )
