"""pipeline.redaction.redact: what counts as a URL's secret, and what stays readable."""

from __future__ import annotations

import io

import pytest

from pipeline.redaction import _RedactingStream, redact


@pytest.mark.parametrize(
    "text, masked",
    [
        ("postgresql://u:pw@h/db", "postgresql://u:***@h/db"),
        ("postgresql\\://u\\:pw@h/db", "postgresql\\://u\\:***@h/db"),  # as Hydra escapes it
        ("postgresql://u@h/db?password=pw&x=1", "postgresql://u@h/db?password=***&x=1"),
        ("k=postgresql://u@h/db?password\\=pw", "k=postgresql://u@h/db?password\\=***"),
        ("https://h/a?sv=1&sig=ab%2F:c", "https://h/a?sv=1&sig=***"),
        ("https://h/a?api_key=k&AccessToken=t", "https://h/a?api_key=***&AccessToken=***"),
        ("s3://b/a?X-Amz-Signature=s: not valid", "s3://b/a?X-Amz-Signature=***: not valid"),
        # Not secrets: a user name, a host, an interpolation resolved only in the worker.
        ("postgresql://mlpsweep@h:5432/optuna", "postgresql://mlpsweep@h:5432/optuna"),
        ("postgresql://u:${oc.env:PW}@h/db", "postgresql://u:${oc.env:PW}@h/db"),
        ("http://h/?token=${oc.env:T}&keyword=x", "http://h/?token=${oc.env:T}&keyword=x"),
    ],
)
def test_redact(text, masked):
    assert redact(text) == masked


def test_a_url_written_in_pieces_is_masked_whole():
    out = io.StringIO()
    stream = _RedactingStream(out)
    for piece in ("storage: postgresql://u:", "pw", "@h/db", "\n", "tail?token=t"):
        stream.write(piece)
    assert out.getvalue() == "storage: postgresql://u:***@h/db\n"
    stream.flush()
    assert out.getvalue().endswith("tail?token=***")
    stream.writelines(["\nhttp://u:", "pw@h\n"])
    assert out.getvalue().endswith("tail?token=***\nhttp://u:***@h\n")
