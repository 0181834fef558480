"""The sweep's last lines: how to open the study's parent run in the MLflow UI."""

from __future__ import annotations

from pipeline.redaction import redact
from pipeline.results.summary import SweepSummary, format_summary

COUNTS = {"complete": 3, "pruned": 1, "failed": 0, "running": 0}


def last_lines(tracking_uri: str) -> list[str]:
    summary = SweepSummary("iris-mlp", COUNTS, "abc123")
    return format_summary(summary, redact(tracking_uri), "7").splitlines()[-2:]


def test_a_local_store_gets_the_mlflow_ui_command_and_the_runs_link():
    command, link = last_lines("sqlite:///mlruns/mlflow.db")
    assert command == "inspect: mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db"
    assert link.split() == [
        "then",
        "open",
        "http://127.0.0.1:5000/#/experiments/7/runs/abc123?workflowType=machine_learning",
    ]


def test_a_tracking_server_gets_its_own_link_with_the_password_redacted():
    lines = last_lines("https://ml:s3cret@mlflow.example:5000/")
    assert lines[-1] == (
        "inspect: https://ml:***@mlflow.example:5000/#/experiments/7/runs/abc123"
        "?workflowType=machine_learning"
    )
    assert "s3cret" not in "\n".join(lines)
