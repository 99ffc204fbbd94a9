"""Spark Connect safety of the engine: only the local-session code may reach the JVM.

Serverless and standard access mode run Spark Connect, where ``sparkContext``, RDDs and Py4J
(``_jsc``, ``_jvm``) do not exist. ``health_monitor/runtime.py`` builds the local session and is
the one file allowed to touch them.
"""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "health_monitor"
JVM_ONLY = re.compile(r"\bsparkContext\b|\._jsc\b|\._jvm\b|\.rdd\b|\bSparkContext\b|\bsc\.parallelize\b")
ALLOWED = {PACKAGE / "runtime.py"}


def jvm_uses(root: Path) -> list[str]:
    """``file:line: text`` for every JVM-only API use under ``root`` outside the allowed files."""
    hits = []
    for path in sorted(root.rglob("*.py")):
        if path in ALLOWED:
            continue
        for no, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if JVM_ONLY.search(code):
                hits.append(f"{path.relative_to(root.parent)}:{no}: {line.strip()}")
    return hits


def test_no_jvm_access_outside_the_local_session_code():
    assert jvm_uses(PACKAGE) == []


def test_the_scan_finds_a_jvm_access(tmp_path):
    pkg = tmp_path / "health_monitor"
    pkg.mkdir()
    (pkg / "bad.py").write_text("def f(df):\n    return df.rdd.map(len)\n")
    (pkg / "ok.py").write_text("def g(df):\n    return df.count()  # not df.rdd\n")
    assert jvm_uses(pkg) == ["health_monitor/bad.py:2: return df.rdd.map(len)"]
