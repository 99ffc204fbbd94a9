"""databricks.yml and resources/*.yml validate against the published bundle JSON schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT.parent / "shared" / "databricks" / "bundle-config-schema.json"


def _bundle() -> dict:
    """databricks.yml with every included resources file merged in, as the CLI assembles it."""
    root = yaml.safe_load((ROOT / "databricks.yml").read_text())
    merged: dict = {}
    for path in sorted((ROOT / "resources").glob("*.yml")):
        for kind, items in (yaml.safe_load(path.read_text()).get("resources") or {}).items():
            clash = set(merged.get(kind, {})) & set(items)
            assert not clash, f"{path.name} redefines {kind} {clash}"
            merged.setdefault(kind, {}).update(items)
    root["resources"] = merged
    return root


def _python_regex(schema_text: str) -> dict:
    # The schema's patterns use \p{L} and \p{N}, which Python's re lacks: translate them.
    text = schema_text.replace("\\\\p{L}", "[^\\\\W\\\\d_]").replace("\\\\p{N}", "\\\\d")
    return json.loads(text)


@pytest.mark.skipif(not SCHEMA.exists(), reason="shared/databricks schema not beside the checkout")
def test_bundle_validates_against_schema():
    jsonschema = pytest.importorskip("jsonschema")
    schema = _python_regex(SCHEMA.read_text())
    bundle = _bundle()
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(bundle), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message[:200]}" for e in errors[:10])
    assert bundle["resources"]["jobs"], "the bundle defines no jobs"


def test_bundle_jobs_run_the_packaged_cli():
    for name, job in _bundle()["resources"].get("jobs", {}).items():
        for task in job["tasks"]:
            wheel = task.get("python_wheel_task")
            assert wheel, f"{name}.{task['task_key']} must run the packaged CLI, not a notebook"
            assert wheel["entry_point"] == "health-monitor"
