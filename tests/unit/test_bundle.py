"""databricks.yml and resources/*.yml: valid against the published bundle JSON schema, and consistent.

Cross-references a deploy would only catch on a workspace (or never): every catalog model has a
training task, every catalog endpoint a serving endpoint, every entry point exists in the built
wheel's metadata, every ``${var.*}`` is defined, every task dependency exists, the generated
resources equal the generator's output. Each check is shown to fail on a broken copy.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

from health_monitor.catalog import CATALOG, ENDPOINTS

ROOT = Path(__file__).resolve().parents[2]
# The schema sits in shared/ beside the main checkout (../shared) or above the worktrees.
SCHEMA = next((p / "shared" / "databricks" / "bundle-config-schema.json" for p in ROOT.parents
               if (p / "shared" / "databricks" / "bundle-config-schema.json").exists()), None)
VAR = re.compile(r"\$\{var\.([A-Za-z0-9_]+)\}")


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
    # The schema's patterns use \p{L} and \p{N}, which Python's re lacks: translate them (first the
    # class [\p{L}\p{N}], letters or digits, then single uses).
    text = (schema_text.replace("[\\\\p{L}\\\\p{N}]", "[^\\\\W_]")
            .replace("\\\\p{L}", "[^\\\\W\\\\d_]").replace("\\\\p{N}", "\\\\d"))
    return json.loads(text)


def _entry_points() -> set[str]:
    return set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"])


def problems(bundle: dict, entry_points: set[str]) -> list[str]:
    """Every broken cross-reference of ``bundle`` (empty when consistent)."""
    out: list[str] = []
    jobs = bundle["resources"].get("jobs", {})
    defined = set(bundle.get("variables", {}))
    for name in sorted(set(VAR.findall(json.dumps(bundle))) - defined):
        out.append(f"${{var.{name}}} is used but not defined")
    trained = set()
    for jname, job in jobs.items():
        keys = {t["task_key"] for t in job["tasks"]}
        envs = {e["environment_key"] for e in job.get("environments", [])}
        for t in job["tasks"]:
            where = f"{jname}.{t['task_key']}"
            wheel = t.get("python_wheel_task")
            if not wheel:
                out.append(f"{where} is not a python_wheel_task of the packaged CLI")
                continue
            if wheel.get("entry_point") not in entry_points:
                out.append(f"{where} runs entry point {wheel.get('entry_point')!r}, not in the wheel")
            if t.get("environment_key") not in envs:
                out.append(f"{where} uses environment {t.get('environment_key')!r}, not defined in the job")
            out += [f"{where} depends on missing task {d['task_key']!r}"
                    for d in t.get("depends_on", []) if d["task_key"] not in keys]
            args = wheel.get("parameters", [])
            if "train" in args and "--model" in args:
                trained.add(args[args.index("--model") + 1])
        out += [f"{jname}: environment without environment_version (client is deprecated)"
                for e in job.get("environments", []) if "environment_version" not in e.get("spec", {})]
    out += [f"catalog model {m} has no training task" for m in sorted(set(CATALOG) - trained)]
    served = {e["config"]["served_entities"][0]["entity_name"].rsplit(".", 1)[-1]
              for e in bundle["resources"].get("model_serving_endpoints", {}).values()}
    out += [f"catalog endpoint {p} ({m}) has no serving endpoint"
            for p, m in ENDPOINTS.items() if m not in served]
    return out


def _generator():
    spec = importlib.util.spec_from_file_location("bundle_generate", ROOT / "resources" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bundle_validates_against_schema():
    assert SCHEMA is not None, "shared/databricks/bundle-config-schema.json not found above the checkout"
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft7Validator(_python_regex(SCHEMA.read_text()))
    bundle = _bundle()
    errors = sorted(validator.iter_errors(bundle), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message[:200]}" for e in errors[:10])
    # Negative cases: a misspelt task field, a wrong type, each on its own, are schema errors.
    for field, value in (("python_wheel_tasks", {"package_name": "x"}), ("max_retries", "many")):
        broken = copy.deepcopy(bundle)
        broken["resources"]["jobs"]["health_monitor_gold_build"]["tasks"][0][field] = value
        assert list(validator.iter_errors(broken)), f"schema accepted task field {field}={value!r}"


def test_bundle_cross_references_hold():
    assert problems(_bundle(), _entry_points()) == []


@pytest.mark.parametrize("breakage, expected", [
    (lambda b: b["resources"]["jobs"]["health_monitor_training"]["tasks"].pop(1), "has no training task"),
    (lambda b: b["resources"]["model_serving_endpoints"].pop("hm_cost_anomaly"), "has no serving endpoint"),
    (lambda b: b["variables"].pop("catalog"), "${var.catalog} is used but not defined"),
    (lambda b: b["resources"]["jobs"]["health_monitor_gold_build"]["tasks"][1]["depends_on"][0]
     .update(task_key="nope"), "depends on missing task 'nope'"),
    (lambda b: b["resources"]["jobs"]["health_monitor_setup"]["tasks"][0]["python_wheel_task"]
     .update(entry_point="hm"), "not in the wheel"),
    (lambda b: b["resources"]["jobs"]["health_monitor_setup"]["environments"][0]["spec"]
     .pop("environment_version"), "without environment_version"),
])
def test_each_broken_cross_reference_is_reported(breakage, expected):
    bundle = _bundle()
    breakage(bundle)
    found = problems(bundle, _entry_points())
    assert any(expected in p for p in found), found


def test_generated_resources_match_the_catalog():
    gen = _generator()
    stale = [str(p.relative_to(ROOT)) for p, text in gen.outputs().items() if p.read_text() != text]
    assert not stale, f"regenerate with: python resources/generate.py ({stale})"


def test_every_cli_command_a_task_runs_exists():
    """Each task's first CLI word after --catalog is a registered sub-command (no notebook-only logic)."""
    from health_monitor.cli import build_parser

    commands = set(build_parser()._subparsers._group_actions[0].choices)
    for jname, job in _bundle()["resources"]["jobs"].items():
        for t in job["tasks"]:
            args = t["python_wheel_task"]["parameters"]
            assert args[:2] == ["--catalog", "${var.catalog}"] and args[2] in commands, (jname, args)


def test_built_wheel_has_the_entry_point_and_no_spark(tmp_path):
    """The wheel Databricks installs: our console script, no pyspark / delta-spark requirement."""
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot build a wheel offline here: {done.stderr.strip().splitlines()[-1:]}")
    wheel = next(tmp_path.glob("*.whl"))
    with zipfile.ZipFile(wheel) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith("METADATA"))).decode()
        eps = z.read(next(n for n in z.namelist() if n.endswith("entry_points.txt"))).decode()
    required = [line for line in meta.splitlines() if line.startswith("Requires-Dist") and "extra ==" not in line]
    assert not [r for r in required if re.search(r"pyspark|delta-spark", r)], required
    assert "health-monitor = health_monitor.cli:main" in eps
