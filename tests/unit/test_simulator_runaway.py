"""The simulator acts out the incidents it labels: a runaway job's runs bill more, even those that fail.

Pure pandas (the run generator needs no Spark): the same draws with and without the incident.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from health_monitor.gold.simulator.calendar import Calendar, Window
from health_monitor.gold.simulator.entities import build_estate
from health_monitor.gold.simulator.incidents import Incident, Plan
from health_monitor.gold.simulator.jobs import generate_runs


def _runs(plan: Plan, job_id: str, estate, window: Window) -> pd.DataFrame:  # noqa: ANN001
    cal = Calendar(range(window.start.year - 1, window.end.year + 2))
    runs = generate_runs(estate, plan, window, np.random.default_rng(3), cal).runs
    return runs[runs["job_id"] == job_id].sort_values("start").reset_index(drop=True)


def test_a_runaway_run_that_fails_still_runs_long_on_its_scaled_out_cluster() -> None:
    window = Window.for_days(date(2026, 3, 20), 12)
    estate = build_estate(5, window, 1, 0.3)
    job = next(j for j in estate.jobs if j.compute == "job_cluster" and j.schedule == "daily")
    job.timeout_seconds, job.max_retries = 0, 0  # no timeout (the runaway's full length shows), one row a run
    span = (window.start + pd.Timedelta(days=4), window.start + pd.Timedelta(days=8))

    def incident(itype: str, **extra: object) -> Incident:
        return Incident(itype, itype, "x", "job", job.job_id, job.workspace_id, *span, 1.0, "", dict(extra))

    # Every run in the span fails (a broken dependency): a failure normally ends a run early.
    broken = incident("failing_job_streak", code="RUN_EXECUTION_ERROR")
    before = _runs(Plan([broken]), job.job_id, estate, window)
    after = _runs(Plan([broken, incident("runaway_job_cost", factor=4.0)]), job.job_id, estate, window)
    hit = ((after["sched"] >= span[0]) & (after["sched"] < span[1])).to_numpy()
    assert hit.sum() >= 3 and (after.loc[hit, "result"] == "FAILED").all()
    # the failed runaway runs ran their whole (doubled) work on twice the workers ...
    np.testing.assert_allclose(after.loc[hit, "exec_s"], after.loc[hit, "work_s"], rtol=1e-9)
    np.testing.assert_allclose(after.loc[hit, "work_s"], 2.0 * before.loc[hit, "work_s"], rtol=1e-9)
    assert (after.loc[hit, "workers"] >= 2 * before.loc[hit, "workers"]).all()
    # ... so each billed at least 4x a full run of the job, where the same failure cut it short before
    dbu = after.loc[hit, "workers"] * after.loc[hit, "exec_s"]
    assert (dbu >= 4.0 * before.loc[hit, "workers"] * before.loc[hit, "work_s"] * 0.999).all()
    assert (before.loc[hit, "exec_s"] < before.loc[hit, "work_s"]).all()
    # runs outside the incident are the same draws
    pd.testing.assert_frame_equal(after.loc[~hit, ["sched", "exec_s", "workers"]],
                                  before.loc[~hit, ["sched", "exec_s", "workers"]])
