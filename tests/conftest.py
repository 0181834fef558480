"""Fixtures shared by the tests; helper functions live in tests/helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """Run in a fresh folder so that ./mlruns (the default stores) lives under tmp_path."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
