"""Shared helpers for the config unit tests."""

from __future__ import annotations

import os
from typing import Any, Dict, List

from alter.config.loader import LoadResult, load_file, load_text

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "config")


def fixture(*parts: str) -> str:
    return os.path.join(FIXTURES, *parts)


def load_ok(path: str) -> LoadResult:
    """Load a fixture that must have no errors and no warnings."""
    result = load_file(path)
    assert result.errors == [], [str(e) for e in result.errors]
    assert result.warnings == [], result.warnings
    return result


def configs(result: LoadResult) -> List[Dict[str, Any]]:
    return [w.config for w in result.workers]


def text_errors(text: str, name: str = "t.conf") -> List[str]:
    return [e.message for e in load_text(text, name).errors]
