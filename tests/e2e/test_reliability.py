"""Faults a sweep meets in the wild, on the real command line: torn and foreign stores."""

from __future__ import annotations

import pytest

from tests.helpers import FAST, run_cli

pytestmark = pytest.mark.slow  # real sweeps


def test_a_torn_journal_loses_no_finished_trial(tmp_path):
    first = run_cli([*FAST, "dataset=iris", "pruner=none"], tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    journal = tmp_path / "mlruns" / "optuna.journal"
    journal.write_bytes(journal.read_bytes()[:-20])  # truncate -s -20: the last write torn
    again = run_cli([*FAST, "dataset=iris", "pruner=none", "study.n_trials=4"], tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    output = (again.stdout + again.stderr).splitlines()
    warnings = [line for line in output if "torn write" in line]
    assert len(warnings) == 1 and "optuna.journal.torn" in warnings[0]
    assert "Traceback" not in again.stderr
    assert (tmp_path / "mlruns" / "optuna.journal.torn").stat().st_size > 0
    assert "study iris-mlp: 4 complete" in again.stdout


def test_a_foreign_file_as_the_study_storage_is_one_line_and_untouched(tmp_path):
    foreign = tmp_path / "notes.txt"
    foreign.write_text("shopping list\neggs\n")
    result = run_cli([*FAST, "dataset=iris", f"study.storage={foreign}"], tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: study.storage={foreign}: not an Optuna journal file")
    assert foreign.read_text() == "shopping list\neggs\n"
    assert not (tmp_path / "mlruns").exists()  # refused before the tracking store was made
