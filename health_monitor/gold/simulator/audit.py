"""Audit log and table lineage: who did what, from where, and which tables they touched.

People log in from their office range during their working hours (in their own timezone) and
then run notebooks, queries, jobs and grants; service principals authenticate around the clock
from fixed cloud addresses. Logins sometimes fail, tokens get created and used, admins change
permissions and workspace settings, analysts download results. Lineage links jobs, queries and
notebooks to the tables they read and write. Security incidents only add more of these same
events: from unusual addresses and hours, on sensitive tables, in unusual volumes.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from health_monitor.gold.simulator.calendar import Calendar, Window
from health_monitor.gold.simulator.entities import METASTORE_ID, Estate, User, uids
from health_monitor.gold.simulator.incidents import Plan

# (service_name, action_name, weight) per role
_ACTIONS = {
    "engineer": [("notebook", "runCommand", 10), ("notebook", "attachNotebook", 2), ("clusters", "start", 1),
                 ("clusters", "edit", 0.4), ("jobs", "runNow", 1), ("jobs", "update", 0.5), ("jobs", "create", 0.1),
                 ("unityCatalog", "getTable", 4), ("unityCatalog", "generateTemporaryTableCredential", 2),
                 ("workspace", "workspaceExport", 0.1), ("secrets", "getSecret", 0.5), ("repos", "updateRepo", 0.8),
                 ("databrickssql", "commandSubmit", 2)],
    "analyst": [("databrickssql", "commandSubmit", 8), ("databrickssql", "downloadQueryResult", 0.5),
                ("dashboards", "getDashboard", 3), ("unityCatalog", "getTable", 3), ("unityCatalog", "listTables", 1),
                ("notebook", "runCommand", 1), ("notebook", "downloadPreviewResults", 0.15)],
    "data_scientist": [("notebook", "runCommand", 12), ("notebook", "attachNotebook", 2), ("clusters", "start", 1),
                       ("unityCatalog", "getTable", 3), ("unityCatalog", "generateTemporaryTableCredential", 2),
                       ("mlflowExperiment", "createRun", 1.5), ("modelRegistry", "createModelVersion", 0.2),
                       ("notebook", "downloadLargeResults", 0.1), ("serverlessRealTimeInference", "updateEndpoint", 0.05)],
    "admin": [("accounts", "addPrincipalToGroup", 0.3), ("unityCatalog", "updatePermissions", 0.8),
              ("workspace", "workspaceConfEdit", 0.15), ("clusters", "edit", 0.6), ("clusterPolicies", "edit", 0.2),
              ("unityCatalog", "getTable", 2), ("databrickssql", "commandSubmit", 2), ("accounts", "generateDbToken", 0.1),
              ("ipAccessLists", "updateIpAccessList", 0.02)],
    "service_principal": [("accounts", "tokenLogin", 6), ("unityCatalog", "generateTemporaryTableCredential", 4),
                          ("unityCatalog", "getTable", 3), ("secrets", "getSecret", 2), ("jobs", "runNow", 0.3)],
}
_CONF_KEYS = ["enableTokensConfig", "maxTokenLifetimeDays", "enableResultsDownloading", "enableExportNotebook",
              "enableIpAccessLists", "enableDbfsFileBrowser"]


def _ev(estate: Estate, u: User, ws: str, t: pd.Timestamp, service: str, action: str, ip: str,
        status: int = 200, params: dict | None = None, err: str | None = None, agent: str | None = None) -> dict:
    account = service == "accounts" and action in ("login", "addPrincipalToGroup")
    return {"account_id": estate.account_id, "workspace_id": "0" if account else ws, "version": "2.0",
            "event_time": t, "source_ip_address": ip, "user_agent": agent or u.user_agent,
            "user_identity.email": u.email, "user_identity.subject_name": None if u.role == "service_principal" else u.email,
            "service_name": service, "action_name": action, "request_params": params or {},
            "response.status_code": status, "response.error_message": err,
            "response.result": None, "audit_level": "ACCOUNT_LEVEL" if account else "WORKSPACE_LEVEL",
            "identity_metadata.run_by": u.email, "identity_metadata.run_as": u.email}


def _params(estate: Estate, u: User, service: str, action: str, rng: np.random.Generator) -> dict:
    tables = estate.tables
    t = tables[int(rng.integers(0, len(tables)))]
    if service == "unityCatalog" and action in ("getTable", "generateTemporaryTableCredential"):
        return {"full_name_arg": t.full_name, "metastore_id": METASTORE_ID}
    if action == "listTables":
        return {"catalog_name": t.catalog, "schema_name": t.schema}
    if action == "updatePermissions":
        group = str(rng.choice(["analysts", "data-engineers", "data-scientists", "finance-readers"]))
        priv = str(rng.choice(["SELECT", "MODIFY", "USE_SCHEMA"]))
        return {"securable_type": "table", "securable_full_name": t.full_name,
                "changes": json.dumps([{"principal": group, "add": [priv]}])}
    if action == "workspaceConfEdit":
        k = str(rng.choice(_CONF_KEYS))
        return {"workspaceConfKeys": k, "workspaceConfValues": str(rng.choice(["true", "false", "90"]))}
    if action == "addPrincipalToGroup":
        return {"targetGroupName": str(rng.choice(["analysts", "data-engineers"])), "targetUserName": u.email}
    if action == "generateDbToken":
        return {"tokenId": uids(rng, 1)[0][:12], "lifetimeSeconds": str(int(rng.choice([7776000, 2592000])))}
    if action.startswith("download") or action == "workspaceExport":
        return {"notebookId": str(int(rng.integers(10**12, 10**13))), "format": "CSV"}
    if action == "getSecret":
        return {"scope": "prod-creds", "key": str(rng.choice(["jdbc-password", "api-key", "s3-key"]))}
    return {}


def generate_audit(estate: Estate, plan: Plan, window: Window, rng: np.random.Generator, cal: Calendar) -> pd.DataFrame:
    """Audit events of the window (flat columns of ``access.audit``)."""
    days = window.days
    dayf = cal.day_factors(days, 0.08, 0.1, 1.0)
    rows: list[dict] = []
    for u in estate.users:
        acts = _ACTIONS[u.role]
        names = [(s, a) for s, a, _ in acts]
        w = np.array([x for _, _, x in acts])
        w = w / w.sum()
        for ws in u.workspaces:
            if u.role == "service_principal":
                hours = window.hours
                keep = rng.random(len(hours)) < 0.8
                hs = hours[keep]
                n = rng.poisson(0.5, len(hs))
                ts = np.repeat(hs.to_numpy(), n) + (rng.uniform(0, 3600, n.sum()) * 1e9).astype("timedelta64[ns]")
                pick = rng.choice(len(names), len(ts), p=w)
                ip = f"{u.ip_prefix}.{int(rng.integers(2, 250))}"
                for t, k in zip(ts, pick, strict=True):
                    s, a = names[k]
                    rows.append(_ev(estate, u, ws, t, s, a, ip, params=_params(estate, u, s, a, rng)))
                continue
            active = rng.random(len(days)) < np.clip(0.92 * dayf * min(1.0, u.activity), 0, 1)
            d = days.to_numpy()[active]
            start = d + ((8.5 - u.tz_offset + rng.normal(0, 0.7, len(d))) * 3.6e12).astype("timedelta64[ns]")
            ips = [f"{u.ip_prefix}.{x}" for x in rng.integers(2, 250, len(d))]
            for i in np.flatnonzero(rng.random(len(d)) < 0.03):
                for _ in range(int(rng.integers(1, 3))):
                    t = start[i] - np.timedelta64(int(rng.integers(20, 120)), "s")
                    rows.append(_ev(estate, u, ws, t, "accounts", "login", ips[i], 401, err="Invalid username or password"))
            for i in range(len(d)):
                rows.append(_ev(estate, u, ws, start[i], "accounts", "login", ips[i]))
            k = rng.poisson(7 * u.activity, len(d))
            day_of = np.repeat(np.arange(len(d)), k)
            ts = start[day_of] + (rng.uniform(60, 9 * 3600, len(day_of)) * 1e9).astype("timedelta64[ns]")
            pick = rng.choice(len(names), len(day_of), p=w)
            denied = rng.random(len(day_of)) < 0.01
            for t, j, di, no in zip(ts, pick, day_of, denied, strict=True):
                s_, a_ = names[j]
                rows.append(_ev(estate, u, ws, t, s_, a_, ips[di], 403 if no else 200, _params(estate, u, s_, a_, rng),
                                "PERMISSION_DENIED: User does not have permission" if no else None))
    rows += _security_incidents(estate, plan, rng)
    df = pd.DataFrame(rows)
    df["event_time"] = pd.to_datetime(df["event_time"]).dt.floor("ms")
    df = df[(df["event_time"] >= window.start) & (df["event_time"] < window.end)].reset_index(drop=True)
    m = len(df)
    df["event_date"] = df["event_time"].dt.floor("D")
    df["event_id"] = uids(rng, m)
    df["request_id"] = uids(rng, m)
    df["session_id"] = None
    df["request_params"] = [json.dumps(p, separators=(",", ":")) for p in df["request_params"]]
    return df


def _security_incidents(estate: Estate, plan: Plan, rng: np.random.Generator) -> list[dict]:
    rows: list[dict] = []
    for inc in plan.of("credential_compromise"):
        u = next(x for x in estate.users if x.email == inc.entity_id)
        ws = inc.workspace_id
        ip = inc.extra["foreign_ip"]
        agent = str(rng.choice(["python-requests/2.31.0", "curl/8.5.0", "Go-http-client/1.1"]))
        t = inc.start
        for _ in range(int(3 + 6 * inc.magnitude)):
            rows.append(_ev(estate, u, ws, t, "accounts", "login", ip, 401, err="Invalid username or password", agent=agent))
            t += pd.Timedelta(seconds=int(rng.integers(2, 40)))
        rows.append(_ev(estate, u, ws, t, "accounts", "tokenLogin", ip, agent=agent))
        rows.append(_ev(estate, u, ws, t + pd.Timedelta(minutes=2), "accounts", "generateDbToken", ip,
                        params={"tokenId": uids(rng, 1)[0][:12], "lifetimeSeconds": "31536000"}, agent=agent))
        span = (inc.end - inc.start) / pd.Timedelta(seconds=1)
        for off in np.sort(rng.uniform(300, span, int(10 + 30 * inc.magnitude))):
            a = str(rng.choice(["getTable", "listTables", "generateTemporaryTableCredential", "tokenLogin"]))
            s = "accounts" if a == "tokenLogin" else "unityCatalog"
            p = _params(estate, u, s, a, rng)
            if a != "listTables" and rng.random() < 0.6:
                p["full_name_arg"] = str(rng.choice(inc.extra["tables"]))
            rows.append(_ev(estate, u, ws, inc.start + pd.Timedelta(seconds=float(off)), s, a, ip, params=p, agent=agent))
        rows.append(_ev(estate, u, ws, inc.start + pd.Timedelta(seconds=span * 0.7), "accounts", "addPrincipalToGroup",
                        ip, 403, {"targetGroupName": "admins", "targetUserName": u.email}, "PERMISSION_DENIED", agent))
    for inc in plan.of("bulk_exfiltration"):
        u = next(x for x in estate.users if x.email == inc.entity_id)
        ip = f"{u.ip_prefix}.{int(rng.integers(2, 250))}"
        span = (inc.end - inc.start) / pd.Timedelta(seconds=1)
        for off in np.sort(rng.uniform(0, span, int(8 + 40 * inc.magnitude))):
            t = inc.start + pd.Timedelta(seconds=float(off))
            tbl = str(rng.choice(inc.extra["tables"]))
            a = str(rng.choice(["downloadQueryResult", "getTable", "generateTemporaryTableCredential", "workspaceExport",
                                "downloadLargeResults"], p=[0.35, 0.2, 0.2, 0.1, 0.15]))
            s = {"downloadQueryResult": "databrickssql", "workspaceExport": "workspace",
                 "downloadLargeResults": "notebook"}.get(a, "unityCatalog")
            p = {"full_name_arg": tbl} if s == "unityCatalog" else {"queryResultTable": tbl, "format": "CSV",
                                                                    "rowCount": str(int(rng.integers(10**5, 10**7)))}
            rows.append(_ev(estate, u, inc.workspace_id, t, s, a, ip, params=p))
    for inc in plan.of("privilege_self_grant"):
        u = next(x for x in estate.users if x.email == inc.entity_id)
        ip = f"{u.ip_prefix}.{int(rng.integers(2, 250))}"
        t = inc.start + pd.Timedelta(minutes=1)
        rows.append(_ev(estate, u, inc.workspace_id, inc.start, "unityCatalog", "getTable", ip,
                        params={"full_name_arg": inc.extra["table"]}))
        rows.append(_ev(estate, u, inc.workspace_id, t, "unityCatalog", "updatePermissions", ip, params={
            "securable_type": "table", "securable_full_name": inc.extra["table"],
            "changes": json.dumps([{"principal": u.email, "add": ["ALL_PRIVILEGES"]}])}))
        rows.append(_ev(estate, u, inc.workspace_id, t + pd.Timedelta(minutes=3), "unityCatalog",
                        "generateTemporaryTableCredential", ip, params={"full_name_arg": inc.extra["table"]}))
    return rows


def generate_lineage(estate: Estate, plan: Plan, window: Window, rng: np.random.Generator, runs: pd.DataFrame,
                     history: pd.DataFrame, audit: pd.DataFrame) -> pd.DataFrame:
    """Lineage rows from job runs, SQL statements and notebook commands."""
    parts = []
    jobs = {j.job_id: j for j in estate.jobs}
    if not runs.empty:
        recs = []
        for r in runs.itertuples(index=False):
            j = jobs[r.job_id]
            ok = r.result == "SUCCEEDED"
            tgt = j.writes[0] if j.writes and ok else None
            for src in j.reads or ([None] if tgt else []):
                recs.append((r.workspace_id, "JOB", r.job_id, r.run_id, src, tgt, r.run_as, r.end if tgt else r.start, None,
                             r.job_id, r.run_id))
        parts.append(pd.DataFrame(recs, columns=["workspace_id", "entity_type", "entity_id", "entity_run_id", "src", "tgt",
                                                 "created_by", "event_time", "statement_id", "job_id", "job_run_id"]))
    if not history.empty:
        h = history[history["statement_type"].isin(["SELECT", "MERGE", "INSERT", "COPY"])
                    & (history["execution_status"] == "FINISHED")]
        write = h["statement_type"].isin(["MERGE", "INSERT", "COPY"]).to_numpy()
        dash = h["query_source.dashboard_id"].notna().to_numpy()
        job = h["query_source.job_info.job_id"].notna().to_numpy()
        src = np.where(write, np.where(h["statement_type"] == "COPY", None, h["_table2"]), h["_table"])
        parts.append(pd.DataFrame({
            "workspace_id": h["workspace_id"].to_numpy(),
            "entity_type": np.where(job, "JOB", np.where(dash, "DASHBOARD_V3", "DBSQL_QUERY")),
            "entity_id": np.where(job, h["query_source.job_info.job_id"], np.where(dash, h["query_source.dashboard_id"], None)),
            "entity_run_id": h["query_source.job_info.job_run_id"].to_numpy(), "src": src,
            "tgt": np.where(write, h["_table"], None), "created_by": h["executed_by"].to_numpy(),
            "event_time": h["end_time"].to_numpy(), "statement_id": h["statement_id"].to_numpy(),
            "job_id": h["query_source.job_info.job_id"].to_numpy(), "job_run_id": h["query_source.job_info.job_run_id"].to_numpy(),
        }))
        joins = h[h["_tpl"] == 4]
        if len(joins):
            parts.append(pd.DataFrame({
                "workspace_id": joins["workspace_id"].to_numpy(), "entity_type": "DBSQL_QUERY", "entity_id": None,
                "entity_run_id": None, "src": joins["_table2"].to_numpy(), "tgt": None,
                "created_by": joins["executed_by"].to_numpy(), "event_time": joins["end_time"].to_numpy(),
                "statement_id": joins["statement_id"].to_numpy(), "job_id": None, "job_run_id": None}))
    if not audit.empty:
        nb = audit[(audit["action_name"].isin(["runCommand", "downloadLargeResults", "generateTemporaryTableCredential"]))
                   & (audit["response.status_code"] == 200)]
        nb = nb[rng.random(len(nb)) < 0.15]
        tnames = [t.full_name for t in estate.tables]
        sens = {t.full_name for t in estate.tables if t.sensitive}
        srcs = []
        for p in nb["request_params"]:
            arg = json.loads(p).get("full_name_arg") or json.loads(p).get("queryResultTable")
            srcs.append(arg if arg in tnames else tnames[int(rng.integers(0, len(tnames)))])
        srcs = np.array(srcs, dtype=object)
        # Sensitive tables are read mostly by their owners' jobs, rarely from notebooks.
        keep = np.array([s not in sens or rng.random() < 0.25 for s in srcs], bool) | (nb["action_name"] != "runCommand").to_numpy()
        parts.append(pd.DataFrame({
            "workspace_id": nb["workspace_id"].to_numpy()[keep], "entity_type": "NOTEBOOK",
            "entity_id": pd.Series(rng.integers(10**12, 10**13, int(keep.sum()))).astype(str).to_numpy(),
            "entity_run_id": None, "src": srcs[keep], "tgt": None,
            "created_by": nb["user_identity.email"].to_numpy()[keep], "event_time": nb["event_time"].to_numpy()[keep],
            "statement_id": None, "job_id": None, "job_run_id": None}))
    df = pd.concat(parts, ignore_index=True)
    df = df[(df["src"].notna() | df["tgt"].notna()) & (df["workspace_id"] != "0")]
    df["event_time"] = pd.to_datetime(df["event_time"]).dt.floor("ms")
    df = df[(df["event_time"] >= window.start) & (df["event_time"] < window.end)].reset_index(drop=True)
    m = len(df)

    parts_of = {t.full_name: t.full_name.split(".") for t in estate.tables}

    def split(col: pd.Series, i: int) -> pd.Series:
        return col.map(lambda v: parts_of[v][i] if isinstance(v, str) else None)

    return pd.DataFrame({
        "account_id": estate.account_id, "metastore_id": METASTORE_ID, "workspace_id": df["workspace_id"],
        "entity_type": df["entity_type"], "entity_id": df["entity_id"], "entity_run_id": df["entity_run_id"],
        "source_table_full_name": df["src"], "source_table_catalog": split(df["src"], 0),
        "source_table_schema": split(df["src"], 1), "source_table_name": split(df["src"], 2),
        "source_type": np.where(df["src"].notna(), "TABLE", None),
        "target_table_full_name": df["tgt"], "target_table_catalog": split(df["tgt"], 0),
        "target_table_schema": split(df["tgt"], 1), "target_table_name": split(df["tgt"], 2),
        "target_type": np.where(df["tgt"].notna(), "TABLE", None), "created_by": df["created_by"],
        "event_time": df["event_time"], "event_date": df["event_time"].dt.floor("D"), "record_id": uids(rng, m),
        "event_id": uids(rng, m), "statement_id": df["statement_id"],
        "entity_metadata.job_info.job_id": df["job_id"], "entity_metadata.job_info.job_run_id": df["job_run_id"],
        "entity_metadata.notebook_id": np.where(df["entity_type"] == "NOTEBOOK", df["entity_id"], None),
        "entity_metadata.dashboard_id": np.where(df["entity_type"] == "DASHBOARD_V3", df["entity_id"], None),
        "direct_access": df["entity_type"].isin(["NOTEBOOK", "DBSQL_QUERY"]),
    })
