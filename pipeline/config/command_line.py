"""Check a ``python -m pipeline.sweep`` or ``pipeline.train`` command line before Hydra runs it,
and compose the same config for the Python entries.

Hydra reports its own composition errors (unknown key, wrong type, unknown group option) over
several lines and exits with code 1 from deep inside ``@hydra.main``, where no ``try`` of ours
can reach. So each entry point first composes the same config with Hydra's compose API, inside
our own ``try``, checks its values (pipeline.config.checks) and turns any failure into one
:class:`UserInputError` line naming the key. Only then does it hand the command line to
``@hydra.main``, which composes it again and runs.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from pipeline.compat import hydra_args_parser, run_exit_handlers
from pipeline.config.checks import validate_config, validate_train_config
from pipeline.config.schema import SweepConfig, TrainConfig, register_configs
from pipeline.config.stores import check_folder_location
from pipeline.errors import UserInputError
from pipeline.redaction import redact

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


@dataclass(frozen=True)
class Command:
    """One of the project's commands: its module, its root config and its value checks."""

    module: str
    config_name: str
    validate: Callable[[DictConfig], None]
    schema: type

    @property
    def keys_hint(self) -> str:
        return f"`python -m {self.module} --cfg job` shows every key and its value"

    def schema_keys(self) -> set[str]:
        """Every dotted key of the command's typed schema (``study.seed``, ``study``, ...)."""
        return set(_dotted_keys(OmegaConf.to_container(OmegaConf.structured(self.schema))))


SWEEP = Command("pipeline.sweep", "config", validate_config, SweepConfig)
TRAIN = Command("pipeline.train", "train", validate_train_config, TrainConfig)


def _dotted_keys(node, prefix: str = ""):
    for key, value in node.items():
        yield f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _dotted_keys(value, f"{prefix}{key}.")


def check_command_line(argv: list[str], command: Command = SWEEP) -> DictConfig | None:
    """Compose ``conf/`` with the overrides in ``argv`` and check the values.

    Raises :class:`UserInputError` with a one-line message. Commands that run nothing
    (``--help``, ``--info``, shell completion) and other config folders are left to Hydra.
    In a multirun the sweep overrides (``worker='range(4)'``) are left out of the check.

    Returns the checked config of a single run (what ``@hydra.main`` will compose again), or
    None for anything else: a multirun, ``--cfg``, the commands left to Hydra.
    """
    args = hydra_args_parser().parse_args(argv)
    if (
        args.help
        or args.hydra_help
        or args.info
        or args.shell_completion
        or args.config_path
        or args.config_dir
        or args.experimental_rerun
    ):
        return None
    overrides = list(args.overrides)
    parsed = [_parse(override) for override in overrides]
    if args.multirun:
        overrides = [o.input_line for o in parsed if not o.is_sweep_override()]
    cfg = compose_config(overrides, command, config_name=args.config_name, check=args.cfg is None)
    if args.cfg is None:
        check_hydra_output(parsed, args.multirun)
    return None if args.multirun or args.cfg is not None else cfg


def check_hydra_output(parsed: list, multirun: bool) -> None:
    """Hydra writes each run's config and log under ``hydra.run.dir`` (``hydra.sweep.dir`` with
    ``-m``) before our code runs; a folder it cannot make would end in its traceback."""
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    given = [o.value() for o in parsed if o.key_or_group == key and not o.is_sweep_override()]
    location = str(given[-1]) if given else ("multirun" if multirun else "outputs")
    check_folder_location(key, location.split("${", 1)[0] or ".")


def compose_config(
    overrides: list[str],
    command: Command = SWEEP,
    *,
    config_name: str | None = None,
    check: bool = True,
) -> DictConfig:
    """The config ``python -m <command> OVERRIDES`` would run, checked (``check``); a bad key,
    type or value raises :class:`UserInputError` with one line."""
    parsed = [_parse(o) for o in overrides]
    for override in parsed:
        _check_added_key(override, command)
    try:
        cfg = _compose(config_name or command.config_name, [o.input_line for o in parsed])
    except (HydraException, OmegaConfBaseException) as error:
        raise UserInputError(one_line(error, command)) from error
    if check:
        command.validate(cfg)
    return cfg


# Where ``+key=value`` may add a key the schema does not have: Hydra's own settings (a
# launcher's extra parameters, say), and the sampler's and pruner's constructor arguments.
OPEN_NODES = ("hydra.", "sampler.", "pruner.")


def _check_added_key(override, command: Command) -> None:
    """``+key=value`` (or ``++``) with a key the schema does not know would be added and then
    ignored by every part of the sweep: refuse it, naming the key."""
    if not (override.is_add() or override.is_force_add()) or override.is_sweep_override():
        return
    key = override.key_or_group
    if key.startswith(OPEN_NODES) or key in command.schema_keys():
        return
    raise UserInputError(
        f"{override.input_line}: no such key {key!r} to set; check the spelling, "
        f"{command.keys_hint}"
    )


def _parse(override: str):
    """One override parsed; a syntax error names the override it is in."""
    try:
        return OverridesParser.create().parse_overrides([override])[0]
    except OverrideParseException as error:
        raise UserInputError(
            redact(  # the override echoed may hold a URL's password
                f"{override}: not valid override syntax ({_first_line(error)}); write "
                "key=value, quoting lists and strings with commas, e.g. 'key=[a,b]'"
            )
        ) from error


@contextmanager
def user_errors_as_one_line() -> Iterator[None]:
    """A :class:`UserInputError` raised inside becomes ``error: ...`` on stderr and exit code 2.

    ``HYDRA_FULL_ERROR=1`` lets it through with its traceback instead.
    """
    try:
        yield
    except UserInputError as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


def exit_if_bad(argv: list[str], command: Command = SWEEP) -> DictConfig | None:
    """Print the one-line error and exit with code 2 if ``argv`` cannot run; else return the
    config of a single run, as :func:`check_command_line`.

    ``HYDRA_FULL_ERROR=1`` skips the check (and returns None), so that Hydra reports with its
    full stack trace.
    """
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        return None
    with user_errors_as_one_line():
        return check_command_line(argv, command)


def _compose(config_name: str, overrides: list[str]) -> DictConfig:
    """Hydra's compose API on ``conf/``. A Hydra the caller has initialised (a notebook's own,
    an app's ``@hydra.main``) is set aside meanwhile and given back."""
    register_configs()
    global_hydra = GlobalHydra.instance()
    callers = global_hydra.hydra if global_hydra.is_initialized() else None
    global_hydra.clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose(config_name=config_name, overrides=overrides)
    finally:
        global_hydra.clear()
        if callers is not None:
            global_hydra.initialize(callers)


def one_line(error: Exception, command: Command = SWEEP) -> str:
    """Hydra's or OmegaConf's multi-line report as one line: the key first, then the fix."""
    if isinstance(error, MissingConfigException) and error.missing_cfg_file and error.options:
        group, _, name = error.missing_cfg_file.rpartition("/")
        options = ", ".join(o for o in error.options if not o.startswith("base_"))
        if group:
            return f"{group}={name}: no such option; choose one of: {options}"
    headline = _first_line(error)
    cause = error.__cause__ if isinstance(error.__cause__, OmegaConfBaseException) else None
    if isinstance(error, OmegaConfBaseException):
        error, cause = None, error
    if cause is None:
        return f"{headline}; {command.keys_hint}"
    key = _override_of(headline) or getattr(cause, "full_key", None) or "config"
    reason = _first_line(cause)
    if "not in" in reason or "Could not override" in headline:
        return f"{key}: no such key ({reason}); check the spelling, {command.keys_hint}"
    return f"{key}: {reason}; give a value of that type, {command.keys_hint}"


def _override_of(headline: str) -> str | None:
    """The override named by "Error merging override X" or "Could not override 'X'."."""
    for prefix in ("Error merging override ", "Could not override "):
        if headline.startswith(prefix):
            return headline.removeprefix(prefix).strip(" .'")
    return None


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def exit_without_teardown(code: int = 0) -> None:
    """End a command at once: the usual exit work, without the interpreter's teardown.

    After ``main()`` returns, Python would spend a second or more tearing down the thousands of
    modules MLflow, SQLAlchemy, pandas and matplotlib bring in, with nothing left to write. The
    exit work that matters still runs first, in its usual order: the fold pool is shut down, the
    ``atexit`` handlers run (logging's flush and close, temporary folders, MLflow's own), and the
    standard streams are flushed. A command exits this way with code 0 (errors leave through
    ``sys.exit``); a job forked by ``hydra/launcher=forked`` with its own code.
    """

    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True)
    run_exit_handlers()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def discard_hydra_output(job_name: str) -> None:
    """Remove what Hydra wrote for this single run (its saved config and log), for a command
    that failed before it wrote anything else: a refused command leaves no trace. Only a folder
    that holds nothing else is removed, with the date folder above it when that is left empty."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.RUN:
        return
    folder, here = Path(HydraConfig.get().runtime.output_dir).resolve(), Path.cwd().resolve()
    if folder == here or not folder.is_relative_to(here):
        return  # a folder the user chose outside, or the working folder itself: theirs
    try:
        if not {path.name for path in folder.iterdir()} <= {".hydra", f"{job_name}.log"}:
            return
        shutil.rmtree(folder, ignore_errors=True)
        for parent in folder.relative_to(here).parents:
            empty = here / parent
            if empty == here or any(empty.iterdir()):
                return
            empty.rmdir()
    except OSError:  # removed meanwhile by someone else
        return
