"""Generated docs stay in step with the code they are generated from."""

from __future__ import annotations

from pathlib import Path

from health_monitor.gold import docs

ROOT = Path(__file__).resolve().parents[2]


def test_gold_schema_doc_is_current():
    committed = (ROOT / "docs" / "gold-schema.md").read_text()
    assert committed == docs.render(), "docs/gold-schema.md is stale: run 'make docs'"
