"""Cut the shipped replay recordings from a simulated estate (how tests/recordings/* were made).

Run: ``.venv/bin/python tests/recordings/cut_recordings.py --estate DIR [--simulate]``, then
``health-monitor replay tests/recordings/<name> --write-expected`` for each, review the alerts
(every recording must alert on its incident's entity), and commit.

Each recording keeps only the rows of the incident's entity (one workspace, one user or one job)
from a few days before the incident (lead-in for the baselines and online models) to a few hours
after it (so the watermark passes the incident's windows).
"""

from __future__ import annotations

import argparse
from datetime import UTC, date, timedelta
from pathlib import Path

import pandas as pd

from health_monitor.runtime import Lakehouse, get_spark
from health_monitor.settings import load_settings
from health_monitor.streaming.recording import cut_recording

HERE = Path(__file__).resolve().parent
ESTATE = {"days": 45, "workspaces": 2, "seed": 11, "scale": 0.25, "end_date": date(2026, 11, 25)}
WANTED = ["runaway_job_cost", "credential_compromise", "bulk_exfiltration", "privilege_self_grant",
          "failing_job_streak"]
#: Cost needs over a week of lead-in: the budget-burn rule and the cost detector speak only once a
#: workspace has a week of history (its weekly pattern).
LEAD_IN = {"cost": timedelta(days=9), "security": timedelta(days=4), "reliability": timedelta(days=12)}
TAIL = timedelta(hours=8)
#: How much of the incident a recording keeps: a daily job's failure streak needs three runs
#: (three days) before the streak rule can fire at all.
INCIDENT_SPAN = {"cost": timedelta(hours=36), "security": timedelta(hours=36), "reliability": timedelta(hours=80)}


def _tables(inc: pd.Series) -> dict[str, str | None]:
    ws = f"workspace_id = '{inc.workspace_id}'"
    if inc.domain == "cost":
        if inc.entity_type == "sku":
            return {"fact_usage": f"{ws} AND sku_name = '{inc.entity_id}'"}
        return {"fact_usage": ws, "commit_configurations": None}
    if inc.domain == "security":
        user = f"'{inc.entity_id}'"
        return {"fact_audit_events": f"user_email = {user}", "fact_table_lineage": f"created_by = {user}",
                "fact_query_history": f"executed_by = {user}"}
    job = f"{ws} AND job_id = '{inc.entity_id}'"
    return {"fact_job_run_timeline": job, "sla_definitions": job}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--estate", required=True, help="lakehouse folder of the simulated estate")
    ap.add_argument("--simulate", action="store_true", help="simulate the estate first")
    ap.add_argument("--only", nargs="*", choices=WANTED, help="cut only these recordings")
    args = ap.parse_args()
    settings = load_settings(args.estate)
    lake = Lakehouse(settings, get_spark(settings))
    if args.simulate:
        from health_monitor.gold.simulator import simulate

        simulate(lake, **ESTATE)
    truth = lake.read("ground_truth_incidents", "simulator").toPandas()
    first = lake.read("fact_usage").agg({"usage_start_time": "min"}).collect()[0][0]
    for itype in args.only or WANTED:
        incs = truth[truth["incident_type"] == itype].sort_values("start_time")
        incs = incs[incs["start_time"] - LEAD_IN[incs.iloc[0].domain if len(incs) else "cost"] >= first]
        if incs.empty:
            print(f"{itype}: no incident with enough lead-in; skipped")
            continue
        inc = incs.iloc[0]
        start = (inc.start_time - LEAD_IN[inc.domain]).to_pydatetime().replace(tzinfo=UTC)
        end_t = min(inc.end_time, inc.start_time + INCIDENT_SPAN[inc.domain])
        end = (end_t + TAIL).to_pydatetime().replace(tzinfo=UTC)
        rec = cut_recording(
            lake, HERE / itype, itype, start, end, _tables(inc), itype,
            f"{inc.description} ({inc.entity_type} {inc.entity_id}, workspace {inc.workspace_id})",
            extra={"incident": {"entity_type": inc.entity_type, "entity_id": str(inc.entity_id),
                                "workspace_id": str(inc.workspace_id), "domain": inc.domain,
                                "start": inc.start_time.isoformat(), "end": inc.end_time.isoformat()},
                   "estate": {k: str(v) for k, v in ESTATE.items()}})
        sizes = {t: len((rec.path / f).read_text().splitlines()) for t, f in rec.tables.items()}
        print(f"{itype}: {rec.path} {sizes}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
