"""docs/options.md is generated from the option table and must not go stale."""

from __future__ import annotations

import os

from alter.config import options
from alter.config.docs import render_options_md

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "options.md")


def test_options_md_is_up_to_date():
    with open(DOC, encoding="utf-8") as fh:
        current = fh.read()
    assert current == render_options_md(), (
        "docs/options.md is stale: run `python -m alter.config.docs > docs/options.md`"
    )


def test_every_option_is_documented():
    text = render_options_md()
    for block, table in options.BLOCKS.items():
        for name in table:
            assert f"| `{name}` |" in text, (block, name)
    assert "behaviour arrives with: " in text  # options whose feature is not built yet say so
