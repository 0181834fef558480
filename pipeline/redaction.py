"""Keep credentials of storage, tracking and artifact URLs out of logs, terminal output and MLflow.

A URL's secret is its password (``scheme://user:password@host``) and the value of any query
parameter whose name says it holds one (``?password=``, ``sslpassword``, ``token``,
``access_token``, ``secret``, ``api_key``, ``sig``, ...). Both are masked as ``***`` wherever
the sweep writes text; the user name, host and database stay readable for diagnosis.
"""

from __future__ import annotations

import logging
import re
import sys
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


# ?password=secret, &token=secret, also as Hydra escapes it (``?password\=secret``); an
# interpolation (``${oc.env:VAR}``) again stays readable.
_SECRET_QUERY_VALUE = re.compile(
    r"(?P<head>[?&;](?:[\w.\-]*(?:pass|pwd|token|secret|sig|credential|auth)[\w.\-]*"
    r"|[\w.\-]*key)\\?=)"
    r"(?!\$\\?\{)(?:[^&#;:\s'\"\]\[,]|:(?!\s))+",  # not the ": " after it in a message
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """Replace the password and the secret query parameters of every URL in ``text`` with
    ``***``."""
    text = _URL_PASSWORD.sub(r"\g<head>***@", text)
    return _SECRET_QUERY_VALUE.sub(r"\g<head>***", text)


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


def redact_standard_streams() -> None:
    """Mask URL secrets in everything this process writes to ``sys.stdout`` and ``sys.stderr``
    from now on: Hydra's ``--cfg job`` and ``--info``, its error reports, tracebacks
    (``HYDRA_FULL_ERROR=1``), progress bars, libraries' own prints. Each of these prints what
    it was given, and a password typed into a URL is part of it."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not getattr(stream, "redacts", False):
            setattr(sys, name, _RedactingStream(stream))


class _RedactingStream:
    """A text stream that masks URL secrets in what is written to it.

    Text is passed on a line at a time (up to a ``\\n`` or ``\\r``, or a flush), so that a URL
    written in pieces (``print`` writes each argument apart) is masked whole.
    """

    redacts = True

    def __init__(self, stream: Any):
        self._stream = stream
        self._pending = ""

    def write(self, text: str) -> int:
        pending = self._pending + text
        end = max(pending.rfind("\n"), pending.rfind("\r")) + 1
        self._pending = pending[end:]
        if end:
            self._stream.write(redact(pending[:end]))
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self._pending:
            self._stream.write(redact(self._pending))
            self._pending = ""
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:  # encoding, isatty, fileno, ...
        return getattr(self._stream, name)


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
    """Keeps URL secrets given on the command line out of what Hydra itself writes and prints.

    Hydra saves the composed config and the overrides under ``<output>/.hydra/`` (and
    ``multirun.yaml`` in a sweep folder) unresolved, logs each job's overrides when it launches
    them, and prints them when a job fails. A password written as ``${oc.env:VAR}`` never
    reaches any of these; a literal one is masked here after the fact and warned about, because
    submitit's job pickles (``.submitit/``) must carry it for the job to run.
    Registered in ``conf/config.yaml`` and ``conf/train.yaml`` under ``hydra.callbacks``.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        redact_log_records()
        redact_standard_streams()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        redact_log_records()
        redact_standard_streams()
        _warn_about_literal_passwords(config)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Also here: a launcher's job runs in a process of its own (joblib, submitit).
        redact_log_records()
        redact_standard_streams()
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
