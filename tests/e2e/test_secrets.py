"""No URL secret leaks through the paths that need no running service: ``--cfg job``, a syntax
error echoing the override, ``pipeline.train``'s Hydra files, an artifact location with a
credential, a traceback asked for with ``HYDRA_FULL_ERROR=1``.

A canary secret is put in a URL's user-info and in its query parameters; every byte printed and
every file written under the command's folder is searched for it. A full sweep and train against
PostgreSQL and an MLflow server: tests/services/test_secrets_and_registration.py.
"""

from __future__ import annotations

import pytest

from tests.helpers import run_cli
from tests.workers import files_containing

pytestmark = pytest.mark.slow

CANARY = "canary-5ecret-9d1e"
# Nothing listens on port 1: a store there is refused at once.
STORAGE = f"postgresql://mlpsweep:{CANARY}@127.0.0.1:1/optuna?sslpassword={CANARY}"
TRACKING = f"http://user:{CANARY}@127.0.0.1:1?token={CANARY}"
# Hydra needs a value holding "=" quoted, as the overrides below do.


def assert_no_canary(result, folder) -> None:
    assert CANARY not in result.stdout + result.stderr
    assert files_containing(folder, CANARY) == []


def assert_one_line(result) -> None:
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]


def test_cfg_job_shows_urls_masked(tmp_path):
    overrides = [f"study.storage='{STORAGE}'", f"tracking.uri='{TRACKING}'"]
    result = run_cli(["--cfg", "job", *overrides], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "mlpsweep:***@127.0.0.1:1/optuna?sslpassword=***" in result.stdout
    assert "user:***@127.0.0.1:1?token=***" in result.stdout
    assert_no_canary(result, tmp_path)


def test_a_syntax_error_echoes_the_override_masked(tmp_path):
    # Unquoted, "?password=" is not valid override syntax: the one line names the override.
    unquoted = f"study.storage=postgresql://mlpsweep@127.0.0.1:1/optuna?password={CANARY}"
    result = run_cli([unquoted], tmp_path)
    assert_one_line(result)
    assert "?password=***: not valid override syntax" in result.stderr
    assert_no_canary(result, tmp_path)


def test_a_refused_train_masks_its_error_and_leaves_no_hydra_files(tmp_path):
    result = run_cli(
        ["-m", "pipeline.train", "dataset=iris", f"tracking.uri='{STORAGE}'"], tmp_path
    )
    assert_one_line(result)
    assert "tracking.uri=postgresql://mlpsweep:***@127.0.0.1:1/optuna?sslpassword=***" in (
        result.stderr
    )
    # A refused command leaves no Hydra run folder (its saved overrides would hold the URL);
    # tests/services/test_secrets_and_registration.py reads those of a train that ran.
    assert not list(tmp_path.glob("outputs/*/*/.hydra/overrides.yaml"))
    assert_no_canary(result, tmp_path)
    # The traceback a user asks for is masked too.
    traced = run_cli(
        ["-m", "pipeline.train", "dataset=iris", f"tracking.uri='{STORAGE}'"],
        tmp_path,
        env={"HYDRA_FULL_ERROR": "1"},
    )
    assert traced.returncode == 1 and "Traceback" in traced.stderr
    assert_no_canary(traced, tmp_path)


def test_a_credential_in_the_artifact_location_is_refused(tmp_path):
    # MLflow would store it with the experiment and every run, where no masking reaches.
    for location in (
        f"https://user:{CANARY}@example.org/a",
        f"s3://bucket/a?X-Amz-Signature={CANARY}",
    ):
        result = run_cli([f"tracking.artifact_location='{location}'"], tmp_path)
        assert_one_line(result)
        assert "holds a credential" in result.stderr
        assert_no_canary(result, tmp_path)
        assert not (tmp_path / "mlruns").exists()
