"""The README's model table lists exactly the catalog's models."""

from __future__ import annotations

import re
from pathlib import Path

from health_monitor.catalog import MODELS


def test_readme_lists_every_catalog_model():
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    listed = re.findall(r"^\| \d+ \| `(\w+)` \|", text, flags=re.M)
    assert listed == [m.name for m in MODELS]
    assert "make demo" in text and "make test" in text
