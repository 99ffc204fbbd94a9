"""Catch-up mode vs a plain first start over the same backlog (cost domain, one Spark session).

Both start from an empty checkpoint over the same ``fact_usage`` backlog (``--rows`` rows of
``--keys`` workspace x SKU series, hourly, in ``--chunks`` Delta commits): ``plain`` runs the
stream available-now over it, ``catchup`` runs ``stream start --available-now --catch-up``
(the batch path, then the stream on the handed-over states). Each reports wall seconds, CPU
seconds of this process plus the Spark JVM and its Python workers (from /proc: stable on a
shared machine) and the load average, and the windows and alerts written (they must match).

Run: ``nice -n 10 .venv/bin/python bench/bench_catchup.py --rows 20000 --keys 30``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from bench_streaming_scale import Meter, usage_rows


def run(mode: str, rows: list[dict], chunks: int, tmp: Path) -> dict:
    """One first start over ``rows``; figures plus what it wrote."""
    from health_monitor.runtime import Lakehouse, get_spark
    from health_monitor.settings import load_settings
    from health_monitor.streaming import engine, recording

    settings = load_settings(tmp / mode)
    lake = Lakehouse(settings, get_spark(settings))
    path = tmp / f"{mode}.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    recording.append_in_order(lake, "fact_usage", recording.read_rows(lake, "fact_usage", path), chunks)
    with Meter() as m:
        engine.run_available_now(lake, ["cost"], catch_up=mode == "catchup")
    out = m.figures(len(rows))
    out.update({"mode": mode, "windows": lake.count("anomaly_scores", "monitor"),
                "alerts": lake.count("alerts", "monitor")})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--keys", type=int, default=30, help="workspace x SKU series (a third as many workspaces)")
    ap.add_argument("--chunks", type=int, default=4, help="Delta commits the backlog arrives in")
    args = ap.parse_args()
    rows = usage_rows(args.rows, args.keys)
    with tempfile.TemporaryDirectory(prefix="bench-catchup-") as tmp:
        for mode in ("plain", "catchup"):  # warm-up: Spark's first jobs and workers, not measured
            run(mode, rows[:600], 1, Path(tmp) / "warmup")
        for mode in ("plain", "catchup"):
            print(json.dumps(run(mode, rows, args.chunks, Path(tmp))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
