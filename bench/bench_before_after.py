"""Issue 16's own measurement on any version of the code, for a same-session before/after pair.

The cost stream through ``engine.run_available_now`` over ``bench_streaming.py``'s usage rows
(workspaces x 3 SKUs x 168 hours, appended in 2 Delta commits), metered with
``bench_streaming_scale.Meter`` (CPU of driver + JVM + Python workers from /proc). The code under
test is the ``health_monitor`` and ``bench_streaming`` that ``PYTHONPATH`` gives; the meter is
always this folder's, so both runs of a pair are measured the same way::

    git archive 0b03ea8 health_monitor bench | tar -x -C /tmp/before
    PYTHONPATH=/tmp/before:/tmp/before/bench python bench/bench_before_after.py before
    PYTHONPATH=$PWD:$PWD/bench python bench/bench_before_after.py after
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _meter_module() -> object:
    """This folder's bench_streaming_scale, loaded by path (its Meter measures both versions)."""
    spec = importlib.util.spec_from_file_location("_meter_src", HERE / "bench_streaming_scale.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["_meter_src"] = mod
    spec.loader.exec_module(mod)
    return mod


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("label", help="names this version in the output (e.g. before, after)")
    ap.add_argument("--workspaces", nargs="+", type=int, default=[10, 120],
                    help="estate sizes: 10 gives the issue's 5,040 rows, 120 its 60,480")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    # The script's own folder is sys.path[0]: without this, `bench_streaming` would always be this
    # version's, whatever PYTHONPATH says.
    sys.path = [p for p in sys.path if Path(p or ".").resolve() != HERE]
    os.environ.setdefault("HEALTH_MONITOR_DRIVER_MEMORY", "2g")
    meter = _meter_module()
    bs = importlib.import_module("bench_streaming")
    hm = importlib.import_module("health_monitor")
    out = []
    tmp = Path(tempfile.mkdtemp(prefix="hm-before-after-"))
    for ws in args.workspaces:
        settings = bs.load_settings(tmp / f"t{ws}")
        lake = bs.Lakehouse(settings, bs.get_spark(settings))
        rows = bs.usage_rows(range(7 * 24), ws)
        bs._load(lake, rows, tmp / f"in{ws}", 2)  # loading is not measured
        with meter.Meter() as m:
            stats = bs.engine.run_available_now(lake, ["cost"], max_files_per_trigger=1)
        rec = {"code": args.label, "tree": str(Path(hm.__file__).parent), "workspaces": ws,
               "windows": stats["cost"].totals["windows"], "batches": stats["cost"].totals["batches"],
               **m.figures(len(rows))}
        print(json.dumps(rec), flush=True)
        out.append(rec)
        if args.json:
            args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
