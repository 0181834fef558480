"""Keep credentials of storage and tracking URLs out of logs, terminal output and MLflow."""

from __future__ import annotations

import re

# scheme://user:password@host -> scheme://user:***@host
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)[^@\s]*@")


def redact(text: str) -> str:
    """Replace the password part of every URL in ``text`` with ``***``."""
    return _URL_PASSWORD.sub(r"\g<head>***@", text)
