"""A torn Optuna journal: finished trials survive, torn bytes are set aside, the study resumes.

Real Optuna journals written by a real study, torn the way a full disk or a kill mid-write tears
them: the tail cut short, then (as before this repair existed) another record appended after it.
"""

from __future__ import annotations

import optuna
import pytest

from pipeline.errors import UserInputError
from pipeline.search.journal import TORN_SUFFIX, split_records
from pipeline.search.storage import open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)


def finished_study(path, n_trials=4):
    study = optuna.create_study(study_name="s", storage=open_storage(str(path), 10))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=n_trials)
    return [t.value for t in study.trials]


def reload(path):
    return optuna.load_study(study_name="s", storage=open_storage(str(path), 10))


def test_a_cut_tail_is_set_aside_and_the_study_resumes(tmp_path):
    path = tmp_path / "optuna.journal"
    values = finished_study(path)
    whole = path.read_bytes()
    path.write_bytes(whole[:-20])  # truncate -s -20: the last record (trial 3 told) is torn
    study = reload(path)
    assert [t.value for t in study.trials][:3] == values[:3]  # the told trials are all there
    aside = (tmp_path / f"optuna.journal{TORN_SUFFIX}").read_bytes()
    assert aside.rstrip(b"\n") == whole[:-20][whole[:-20].rfind(b"\n") + 1 :]
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert len(reload(path).trials) == 6  # and it keeps working after


def test_a_record_appended_after_a_torn_one_is_kept(tmp_path):
    """What Optuna itself leaves when it appends after a torn write: both on one line."""
    path = tmp_path / "optuna.journal"
    finished_study(path)
    lines = path.read_bytes().splitlines(keepends=True)
    torn = lines[-2][:30]  # a write of the second-last record, cut short, then done again
    path.write_bytes(b"".join(lines[:-2]) + torn + lines[-2] + lines[-1])
    with pytest.raises(ValueError):  # what every later read would meet without the repair
        list(optuna.storages.journal.JournalFileBackend(str(path)).read_logs(0))
    study = reload(path)
    assert study.trials[-1].state == optuna.trial.TrialState.COMPLETE
    assert (tmp_path / f"optuna.journal{TORN_SUFFIX}").read_bytes() == torn + b"\n"


def test_a_whole_journal_is_left_byte_for_byte(tmp_path):
    path = tmp_path / "optuna.journal"
    finished_study(path)
    before = path.read_bytes()
    reload(path)
    assert path.read_bytes() == before
    assert not (tmp_path / f"optuna.journal{TORN_SUFFIX}").exists()


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n\x00\x00", b"name,value\na,1\n"])
def test_a_foreign_file_is_refused_in_one_line_and_left_untouched(tmp_path, content):
    path = tmp_path / "optuna.journal"
    path.write_bytes(content)
    with pytest.raises(UserInputError, match=r"^study.storage=.*: not an Optuna journal file"):
        open_storage(str(path), 10)
    assert path.read_bytes() == content
    assert not (tmp_path / f"optuna.journal{TORN_SUFFIX}").exists()


def test_split_records_by_hand():
    a, b = b'{"op_code":1,"x":1}\n', b'{"op_code":2}\n'
    assert split_records(a + b) == (a + b, b"")
    assert split_records(a + b'{"op_co') == (a, b'{"op_co')
    assert split_records(a + b'{"op_' + b) == (a + b, b'{"op_')
