"""databricks.yml and resources/*.yml: valid against the published bundle JSON schema, and consistent.

Cross-references a deploy would only catch on a workspace (or never): every catalog model has a
training task, every catalog endpoint a serving endpoint, every entry point exists in the built
wheel's metadata, every ``${var.*}`` is defined, every task dependency exists, every task's
arguments parse with the real CLI parser, at most one stream flavour runs per target, the
generated resources equal the generator's output. Each check is shown to fail on a broken copy.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import shlex
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
VAR = re.compile(r"\$\{var\.([A-Za-z0-9_]+)(?:\.([A-Za-z0-9_]+))?\}")
#: The stream flavours' switches: serverless (available-now schedules) and classic (continuous).
STREAM_SWITCHES = ("serverless_streams_status", "classic_streams_status")


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


def _substitute(text: str, variables: dict) -> str:
    """``${var.x}`` / ``${var.x.y}`` -> the variable's default (what the CLI receives at run time)."""
    def value(m: re.Match) -> str:
        default = variables.get(m.group(1), {}).get("default", "x")  # undefined: reported apart
        return str(default.get(m.group(2), "x") if m.group(2) else default) or "x"
    return VAR.sub(value, text)


def problems(bundle: dict, entry_points: set[str]) -> list[str]:
    """Every broken cross-reference of ``bundle`` (empty when consistent)."""
    from health_monitor.cli import build_parser

    out: list[str] = []
    jobs = bundle["resources"].get("jobs", {})
    variables = bundle.get("variables", {})
    for name, key in sorted(set(VAR.findall(json.dumps(bundle)))):
        if name not in variables:
            out.append(f"${{var.{name}}} is used but not defined")
        elif key and key not in (variables[name].get("default") or {}):
            out.append(f"${{var.{name}.{key}}} has no default")
    parser = build_parser()
    trained = set()
    for jname, job in jobs.items():
        keys = {t["task_key"] for t in job["tasks"]}
        envs = {e["environment_key"] for e in job.get("environments", [])}
        clusters = {c["job_cluster_key"] for c in job.get("job_clusters", [])}
        for t in job["tasks"]:
            where = f"{jname}.{t['task_key']}"
            wheel = t.get("python_wheel_task")
            if not wheel:
                out.append(f"{where} is not a python_wheel_task of the packaged CLI")
                continue
            if wheel.get("entry_point") not in entry_points:
                out.append(f"{where} runs entry point {wheel.get('entry_point')!r}, not in the wheel")
            if t.get("environment_key") not in envs and t.get("job_cluster_key") not in clusters:
                out.append(f"{where} has no compute: environment or job cluster not defined in the job")
            if t.get("job_cluster_key") and not any("whl" in lib for lib in t.get("libraries", [])):
                out.append(f"{where} runs on a job cluster without the wheel as a library")
            out += [f"{where} depends on missing task {d['task_key']!r}"
                    for d in t.get("depends_on", []) if d["task_key"] not in keys]
            # The arguments as the task's process receives them, through the real parser.
            args = [_substitute(a, variables) for a in wheel.get("parameters", [])]
            try:
                parsed = parser.parse_args(args)
            except SystemExit:
                out.append(f"{where}: the CLI rejects {shlex.join(args)}")
                continue
            if parsed.command is None or not getattr(parsed, "func", None):
                out.append(f"{where}: {shlex.join(args)} runs no command")
            if args[:1] != ["--catalog"]:
                out.append(f"{where}: arguments do not start with --catalog (would use the default catalog)")
            if parsed.command == "train" and getattr(parsed, "model", None):
                trained.update([parsed.model] if isinstance(parsed.model, str) else parsed.model)
        out += [f"{jname}: environment without environment_version (client is deprecated)"
                for e in job.get("environments", []) if "environment_version" not in e.get("spec", {})]
    out += [f"catalog model {m} has no training task" for m in sorted(set(CATALOG) - trained)]
    served = {e["config"]["served_entities"][0]["entity_name"].rsplit(".", 1)[-1]
              for e in bundle["resources"].get("model_serving_endpoints", {}).values()}
    out += [f"catalog endpoint {p} ({m}) has no serving endpoint"
            for p, m in ENDPOINTS.items() if m not in served]
    out += stream_choice_problems(bundle)
    return out


def stream_choice_problems(bundle: dict) -> list[str]:
    """Both stream flavours exist, each switched by its variable, and no target runs both at once
    (two writers of one checkpoint would fight over it)."""
    jobs = bundle["resources"].get("jobs", {})
    out: list[str] = []
    classic = [j for j in jobs.values() if j.get("continuous", {}).get("pause_status") == "${var.classic_streams_status}"]
    serverless = [j for j in jobs.values()
                  if j.get("schedule", {}).get("pause_status") == "${var.serverless_streams_status}"]
    if not any(j.get("job_clusters") for j in classic):
        out.append("no continuous stream job on a job cluster switched by classic_streams_status")
    if len(serverless) != 3 or not all("--available-now" in j["tasks"][0]["python_wheel_task"]["parameters"]
                                       for j in serverless):
        out.append("the three available-now stream jobs are not all switched by serverless_streams_status")
    variables = bundle.get("variables", {})
    for target, spec in {"(defaults)": {}, **bundle.get("targets", {})}.items():
        chosen = {v: ((spec or {}).get("variables") or {}).get(v, variables.get(v, {}).get("default"))
                  for v in STREAM_SWITCHES}
        if list(chosen.values()).count("UNPAUSED") > 1:
            out.append(f"target {target} runs both stream flavours: {chosen}")
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
    (lambda b: b["resources"]["jobs"]["health_monitor_stream_cost"]["tasks"][0]["python_wheel_task"]
     ["parameters"].append("--trigger-every"), "the CLI rejects"),
    (lambda b: b["resources"]["jobs"]["health_monitor_training"]["tasks"][1]["python_wheel_task"]
     ["parameters"].extend(["--model-name", "x"]), "the CLI rejects"),
    (lambda b: b["resources"]["model_serving_endpoints"]["hm_cost_anomaly"]["config"]["served_entities"][0]
     .update(entity_version="${var.champion_versions.nope}"), "${var.champion_versions.nope} has no default"),
    (lambda b: b["targets"]["prod"]["variables"].update(classic_streams_status="UNPAUSED"),
     "runs both stream flavours"),
    (lambda b: b["resources"]["jobs"].pop("health_monitor_streams_classic"), "no continuous stream job"),
    (lambda b: b["resources"]["jobs"]["health_monitor_streams_classic"]["tasks"][0].pop("libraries"),
     "without the wheel"),
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
