"""The incident plan: what goes wrong, where and when, and how strongly.

Each incident is a latent cause that the generators act out (a job whose cluster runs away, a
stolen token used from abroad, a table whose producer stalls). Its effects reach the system
tables only as costs, durations, states, utilization, audit events and lineage; the plan itself
is written only to ``ground_truth_incidents`` for scoring. Magnitudes vary so that some
incidents are subtle.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from health_monitor.gold.simulator.calendar import Window
from health_monitor.gold.simulator.entities import Estate, uid

#: incident type -> (domain, entity_type, typical duration in hours (low, high))
INCIDENT_TYPES: dict[str, tuple[str, str, tuple[float, float]]] = {
    "runaway_job_cost": ("cost", "job", (24, 96)),
    "billing_error": ("cost", "sku", (3, 12)),
    "budget_overrun": ("cost", "workspace", (96, 240)),
    "untagged_spend": ("cost", "cluster", (48, 168)),
    "credential_compromise": ("security", "user", (2, 10)),
    "bulk_exfiltration": ("security", "user", (1, 4)),
    "privilege_self_grant": ("security", "user", (0.2, 1)),
    "warehouse_saturation": ("performance", "warehouse", (3, 10)),
    "cluster_over_provisioning": ("performance", "cluster", (72, 240)),
    "dbr_regression": ("performance", "job", (72, 240)),
    "failing_job_streak": ("reliability", "job", (24, 96)),
    "sla_breach": ("reliability", "job", (24, 72)),
    "breaking_schema_change": ("quality", "table", (24, 72)),
    "late_data": ("quality", "table", (12, 48)),
    "quality_degradation": ("quality", "table", (24, 96)),
}


@dataclass
class Incident:
    """One injected incident: what, where, when, how strong, and the details its effects need."""

    incident_id: str
    incident_type: str
    domain: str
    entity_type: str
    entity_id: str
    workspace_id: str | None
    start: pd.Timestamp
    end: pd.Timestamp
    magnitude: float  # 1.0 = typical; lower is subtler
    description: str = ""
    extra: dict = field(default_factory=dict)

    def active(self, ts: pd.Timestamp | np.ndarray) -> bool | np.ndarray:
        """Whether the incident is under way at ``ts`` (scalar or datetime64 array)."""
        if isinstance(ts, np.ndarray):
            return (ts >= self.start.to_datetime64()) & (ts < self.end.to_datetime64())
        return self.start <= ts < self.end


class Plan:
    """Incidents by type, for the generators to consult."""

    def __init__(self, incidents: list[Incident]) -> None:
        self.incidents = incidents

    def of(self, incident_type: str) -> list[Incident]:
        """Incidents of one type."""
        return [i for i in self.incidents if i.incident_type == incident_type]

    def frame(self) -> pd.DataFrame:
        """Rows of ``ground_truth_incidents``."""
        return pd.DataFrame({
            "incident_id": [i.incident_id for i in self.incidents],
            "incident_type": [i.incident_type for i in self.incidents],
            "domain": [i.domain for i in self.incidents],
            "entity_type": [i.entity_type for i in self.incidents],
            "entity_id": [i.entity_id for i in self.incidents],
            "workspace_id": [i.workspace_id for i in self.incidents],
            "start_time": pd.to_datetime([i.start for i in self.incidents]),
            "end_time": pd.to_datetime([i.end for i in self.incidents]),
            "description": [i.description for i in self.incidents],
        })


def incidents_per_type(days: float, workspaces: int) -> int:
    """Several of each type at default size (120 days, 8 workspaces), at least one on tiny estates."""
    return max(1, round(days * min(workspaces, 8) / 240))


def plan_incidents(estate: Estate, rng: np.random.Generator, window: Window, per_type: int,
                   types: list[str] | None = None, warmup_days: float = 7.0) -> Plan:
    """Draw ``per_type`` incidents of each type, start times uniform after a warm-up period.

    The warm-up leaves normal history before the first incident, as a detector needs a baseline.
    """
    span_h = (window.end - window.start) / pd.Timedelta(hours=1)
    warm = min(warmup_days * 24, span_h * 0.35)
    out: list[Incident] = []
    used: set[tuple[str, str]] = set()
    for itype in types or list(INCIDENT_TYPES):
        for _ in range(per_type):
            inc = _draw(estate, rng, window, itype, warm, span_h, used)
            if inc is not None:
                out.append(inc)
    return Plan(out)


def _draw(estate: Estate, rng: np.random.Generator, window: Window, itype: str, warm: float,
          span_h: float, used: set[tuple[str, str]]) -> Incident | None:
    domain, etype, (dlo, dhi) = INCIDENT_TYPES[itype]
    dur = float(rng.uniform(dlo, dhi))
    dur = min(dur, max(1.0, span_h - warm - 1))
    start_h = float(rng.uniform(warm, max(warm + 0.01, span_h - dur)))
    start = (window.start + pd.Timedelta(hours=start_h)).floor("min")
    end = min(start + pd.Timedelta(hours=dur), window.end)
    mag = float(np.clip(rng.lognormal(0, 0.45), 0.4, 3.0))
    extra: dict = {}
    ws = estate.workspaces[int(rng.integers(0, len(estate.workspaces)))]

    def pick(items: list, key) -> object | None:  # noqa: ANN001 - any entity
        free = [x for x in items if (itype, key(x)) not in used]
        if not free:
            return None
        x = free[int(rng.integers(0, len(free)))]
        used.add((itype, key(x)))
        return x

    jobs_cluster = [j for j in estate.jobs if j.compute == "job_cluster" and j.schedule not in ("adhoc", "continuous")]
    scheduled = [j for j in estate.jobs if j.schedule in ("daily", "hourly", "every4h") and j.compute != "warehouse"]
    if itype == "runaway_job_cost":
        job = pick(jobs_cluster or scheduled, lambda j: j.job_id)
        if job is None:
            return None
        extra["factor"] = 2.5 + 4 * mag
        desc = f"job {job.name}: cluster scaled out and runs far longer (x{extra['factor']:.1f} DBUs)"
        return Incident(uid(rng), itype, domain, etype, job.job_id, job.workspace_id, start, end, mag, desc, extra)
    if itype == "billing_error":
        extra["factor"] = 3 + 5 * mag
        extra["corrected"] = bool(rng.random() < 0.5)
        extra["sku"] = "PREMIUM_ALL_PURPOSE_COMPUTE"
        desc = (f"billing records of {extra['sku']} in {ws.name} inflated x{extra['factor']:.1f}"
                + (" (later retracted and restated)" if extra["corrected"] else ""))
        return Incident(uid(rng), itype, domain, etype, extra["sku"], ws.workspace_id, start, end, mag, desc, extra)
    if itype == "budget_overrun":
        extra["factor"] = 1.3 + 0.5 * mag
        desc = f"workspace {ws.name}: new unplanned workloads, spend ramps to x{extra['factor']:.2f}"
        return Incident(uid(rng), itype, domain, etype, ws.workspace_id, ws.workspace_id, start, end, mag, desc, extra)
    if itype == "untagged_spend":
        extra["cluster_id"] = f"{rng.integers(1000, 9999)}-{rng.integers(100000, 999999)}-{uid(rng)[:8]}"
        extra["workers"] = int(2 + 4 * mag)
        desc = f"untagged all-purpose cluster in {ws.name} running around the clock"
        return Incident(uid(rng), itype, domain, etype, extra["cluster_id"], ws.workspace_id, start, end, mag, desc, extra)
    if itype in ("credential_compromise", "bulk_exfiltration", "privilege_self_grant"):
        people = [u for u in estate.users if u.role in (("analyst", "engineer", "data_scientist")
                                                        if itype != "privilege_self_grant" else ("engineer", "admin", "data_scientist"))]
        user = pick(people, lambda u: u.email)
        if user is None:
            return None
        wid = user.workspaces[0]
        extra["foreign_ip"] = f"{rng.choice([185, 91, 45, 103, 196])}.{rng.integers(1, 255)}.{rng.integers(1, 255)}.{rng.integers(1, 255)}"
        extra["tables"] = [t.full_name for t in estate.tables if t.sensitive]
        if itype == "privilege_self_grant":
            end = start + pd.Timedelta(minutes=int(5 + 30 * rng.random()))
            extra["table"] = str(rng.choice(extra["tables"]))
            desc = f"{user.email} granted themselves ALL PRIVILEGES on {extra['table']}"
        elif itype == "bulk_exfiltration":
            desc = f"{user.email} read and exported sensitive tables in bulk"
        else:
            desc = f"credentials of {user.email} used from {extra['foreign_ip']} at unusual hours"
        return Incident(uid(rng), itype, domain, etype, user.email, wid, start, end, mag, desc, extra)
    if itype == "warehouse_saturation":
        wh = pick(estate.warehouses, lambda w: w.warehouse_id)
        if wh is None:
            return None
        extra["factor"] = 3 + 4 * mag
        desc = f"warehouse {wh.name}: query surge x{extra['factor']:.1f} saturates capacity"
        return Incident(uid(rng), itype, domain, etype, wh.warehouse_id, wh.workspace_id, start, end, mag, desc, extra)
    if itype == "cluster_over_provisioning":
        cl = pick([c for c in estate.clusters if c.kind == "shared"], lambda c: c.cluster_id)
        if cl is None:
            return None
        extra["workers"] = max(cl.max_workers, 1) * int(3 + 2 * mag)
        desc = f"cluster {cl.name} resized to {extra['workers']} workers while its load stayed flat"
        return Incident(uid(rng), itype, domain, etype, cl.cluster_id, cl.workspace_id, start, end, mag, desc, extra)
    if itype == "dbr_regression":
        job = pick([j for j in jobs_cluster if j.schedule in ("daily", "hourly", "every4h")] or jobs_cluster,
                   lambda j: j.job_id)
        if job is None:
            return None
        extra["factor"] = 1.25 + 0.5 * mag
        extra["new_dbr"] = "17.3.x-scala2.13" if not job.dbr.endswith("ml-scala2.12") else "17.3.x-cpu-ml-scala2.13"
        desc = f"job {job.name} upgraded to DBR {extra['new_dbr']}: runs x{extra['factor']:.2f} slower"
        return Incident(uid(rng), itype, domain, etype, job.job_id, job.workspace_id, start, end, mag, desc, extra)
    if itype in ("failing_job_streak", "sla_breach"):
        pool = scheduled if itype == "failing_job_streak" else [
            j for j in estate.jobs if j.schedule in ("daily", "every4h", "hourly") and j.archetype != "adhoc_notebook"]
        job = pick(pool, lambda j: j.job_id)
        if job is None:
            return None
        extra["factor"] = 1.8 + 1.2 * mag
        if itype == "failing_job_streak":
            extra["code"] = str(rng.choice(["LIBRARY_INSTALLATION_ERROR", "RUN_EXECUTION_ERROR", "STORAGE_ACCESS_ERROR",
                                            "UNAUTHORIZED_ERROR"]))
            desc = f"job {job.name} fails on every run ({extra['code']}) after a dependency broke"
        else:
            desc = f"job {job.name}: upstream delay and data growth push runs past the SLA"
        return Incident(uid(rng), itype, domain, etype, job.job_id, job.workspace_id, start, end, mag, desc, extra)
    # quality: tables written by some job
    written = {t for j in estate.jobs for t in j.writes}
    tbl = pick([t for t in estate.tables if t.full_name in written and t.monitored], lambda t: t.full_name)
    if tbl is None:
        return None
    writer = next(j for j in estate.jobs if tbl.full_name in j.writes)
    extra["writer_job"] = writer.job_id
    if itype == "breaking_schema_change":
        cols = [c for c, _ in tbl.columns[1:]]
        extra["column"] = str(rng.choice(cols))
        extra["change"] = str(rng.choice(["drop", "type", "rename"]))
        desc = f"{tbl.full_name}: column {extra['column']} {extra['change']} breaks downstream readers"
    elif itype == "late_data":
        desc = f"{tbl.full_name}: producer stalled, data {dur:.0f}h late"
    else:
        extra["factor"] = float(np.clip(0.55 - 0.2 * mag, 0.05, 0.7))
        desc = f"{tbl.full_name}: daily row count drops to {extra['factor']:.0%} of normal"
    return Incident(uid(rng), itype, domain, etype, tbl.full_name, writer.workspace_id, start, end, mag, desc, extra)
