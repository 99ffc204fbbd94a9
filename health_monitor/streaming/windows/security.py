"""Security windows: a user's hour of audit and lineage events against the user's own weekly pattern."""

from __future__ import annotations

from collections import deque

import pandas as pd

from health_monitor.streaming.windows.state import (
    DAY_MS,
    KeyState,
    _flag,
    _ts,
)


def _sec_accumulate(acc: dict, g: pd.DataFrame) -> None:
    audit = g[g["source"] == "audit"]
    lineage = g[g["source"] == "lineage"]
    hours = pd.to_datetime(g["event_time"]).dt.hour
    off = (hours < 6) | (hours >= 22)
    dow = pd.to_datetime(g["event_time"]).dt.dayofweek
    for k, v in {
        "events": len(audit),
        "logins": int(audit["is_login"].sum()),
        "failed_logins": int((audit["is_login"] & audit["is_failed"]).sum()),
        "off_hours_events": int(off[audit.index].sum()) if len(audit) else 0,
        "weekend_events": int((dow[audit.index] >= 5).sum()) if len(audit) else 0,
        "admin_actions": int(audit["is_admin"].sum()),
        "off_hours_admin_actions": int((audit["is_admin"] & off[audit.index]).sum()) if len(audit) else 0,
        "grants": int(audit["is_grant"].sum()),
        "self_grants": int(audit["is_self_grant"].sum()),
        "export_count": int(audit["is_export"].sum()),
        "export_bytes": float(audit.loc[audit["is_export"], "export_bytes"].fillna(0).sum()),
    }.items():
        acc[k] = acc.get(k, 0) + v
    acc.setdefault("ips", set()).update(audit["ip"].dropna().tolist())
    acc.setdefault("tables", set()).update(lineage["table_name"].dropna().tolist())
    reads = lineage[_flag(lineage["is_sensitive"]) & _flag(lineage["is_read"])]
    acc["sensitive_reads"] = acc.get("sensitive_reads", 0) + len(reads)
    acc.setdefault("sensitive_tables", set()).update(reads["table_name"].dropna().tolist())
    stm = acc.setdefault("statements", {})
    for sid, b in lineage[lineage["statement_id"].notna()][["statement_id", "read_bytes"]].itertuples(
            index=False):
        stm[sid] = max(stm.get(sid, 0.0), 0.0 if b is None or b != b else float(b))
    wss = acc.setdefault("workspaces", {})
    for ws, n in g["workspace_id"].value_counts().items():
        wss[ws] = wss.get(ws, 0) + int(n)


def _is_service_principal(user: str) -> bool:
    # Service principals show up as application ids (UUIDs) rather than e-mail addresses.
    return "@" not in user


def _network(ip: str) -> str:
    """The network an address belongs to: IPv4 /24, IPv6 /48 (a user's office, VPN or home
    network keeps its prefix while the host part changes from day to day)."""
    if ":" in ip:
        return ":".join(ip.split(":")[:3])
    return ".".join(ip.split(".")[:3])


def _own_max(h: dict, name: str, start_ms: int, value: float, known: bool) -> float:
    """The key's largest ``name`` over its previous 30 days (NaN while the key is new), then
    remembers ``value``. Only non-zero windows are kept: the state stays small."""
    q: deque = h.setdefault(name, deque())
    while q and q[0][0] < start_ms - 30 * DAY_MS:
        q.popleft()
    out = max((v for _, v in q), default=0.0) if known else float("nan")
    if value > 0:
        q.append((start_ms, float(value)))
    return out


#: Share of a typical person's active hours in each slot of the week (weekend?, 3-hour band of
#: the day, UTC): the population's pattern a user's own is blended with while their history is
#: short. Weekdays 06-21 hold 80%, weekday nights 5%, weekend days 13%, weekend nights 2%.
_DAYTIME_BANDS = (2, 3, 4, 5, 6)  # 06-09 .. 18-21
POPULATION_SLOT_SHARE = {
    (wk, band): (0.13 / 5 if band in _DAYTIME_BANDS else 0.02 / 3) if wk
    else (0.80 / 5 if band in _DAYTIME_BANDS else 0.05 / 3)
    for wk in (False, True) for band in range(8)
}
#: Active hours the population's pattern is worth in a user's blend.
POPULATION_WEIGHT = 20.0
#: A slot holding under this share of a user's (blended) active hours is outside their pattern.
RARE_SLOT_SHARE = 0.01


def _slot(start_ms: int) -> tuple[bool, int]:
    t = _ts(start_ms)
    return bool(t.dayofweek >= 5), int(t.hour // 3)


def _off_pattern(h: dict, start_ms: int, active: bool) -> float:
    """Share of the user's active hours that fall in this window's slot of the week (their own
    history blended with the population's pattern), then learns the window. A user who works
    weekends has weekend slots in their pattern; one who never did has not."""
    slots: dict = h.setdefault("slots", {})
    total = h.get("active_hours", 0)
    slot = _slot(start_ms)
    share = (slots.get(slot, 0) + POPULATION_WEIGHT * POPULATION_SLOT_SHARE[slot]) / (total + POPULATION_WEIGHT)
    if active:
        slots[slot] = slots.get(slot, 0) + 1
        h["active_hours"] = total + 1
    return share


def _sec_features(ks: KeyState, start_ms: int, acc: dict, ctx: dict) -> tuple[float, dict]:
    seen: set = ks.history.setdefault("pii_seen", set())
    sens = acc.get("sensitive_tables", set())
    first = sens - seen
    # The first windows of a user say nothing about "first access": everything is new then.
    known_for = start_ms - ks.history.setdefault("first_seen_ms", start_ms)
    known = known_for >= 2 * DAY_MS
    first_pii = len(first) if known else 0
    seen.update(sens)
    nets_seen: set = ks.history.setdefault("networks", set())
    nets = {_network(str(ip)) for ip in acc.get("ips", ())}
    new_networks = len(nets - nets_seen) if known else 0
    nets_seen.update(nets)
    # The user's own busiest hours so far: a burst is judged against what this user does.
    sens_max = _own_max(ks.history, "sensitive_reads_hist", start_ms, acc.get("sensitive_reads", 0), known)
    export_max = _own_max(ks.history, "export_count_hist", start_ms, acc.get("export_count", 0), known)
    logins = acc.get("logins", 0)
    events = acc.get("events", 0)
    slot_share = _off_pattern(ks.history, start_ms, events > 0)
    gb = 1024 ** 3
    export_gb = acc.get("export_bytes", 0.0) / gb
    read_gb = sum(acc.get("statements", {}).values()) / gb
    wss = acc.get("workspaces", {})
    f = {
        "user": ks.entity_id,
        "events": float(acc.get("events", 0)),
        "logins": float(logins),
        "failed_logins": float(acc.get("failed_logins", 0)),
        "failed_login_rate": acc.get("failed_logins", 0) / logins if logins else 0.0,
        "distinct_ips": float(len(acc.get("ips", ()))),
        "off_hours_events": float(acc.get("off_hours_events", 0)),
        "weekend_events": float(acc.get("weekend_events", 0)),
        "slot_share": slot_share,
        "off_pattern_events": float(events) if slot_share < RARE_SLOT_SHARE else 0.0,
        "admin_actions": float(acc.get("admin_actions", 0)),
        "off_hours_admin_actions": float(acc.get("off_hours_admin_actions", 0)),
        "tables_touched": float(len(acc.get("tables", ()))),
        "sensitive_table_access": float(acc.get("sensitive_reads", 0)),
        "first_pii_tables": float(first_pii),
        "sensitive_reads_max_30d": sens_max,
        "new_networks": float(new_networks),
        "export_count_max_30d": export_max,
        "grants": float(acc.get("grants", 0)),
        "self_grants": float(acc.get("self_grants", 0)),
        "export_gb": export_gb,
        "export_bytes": float(acc.get("export_bytes", 0.0)),  # documented rule column (domains.py)
        "export_count": float(acc.get("export_count", 0)),
        "read_gb": read_gb,
        "is_service_principal": float(_is_service_principal(ks.entity_id)),
        "sensitivity": 1.0 if sens else (0.3 if acc.get("tables") else 0.0),
        "_workspace_id": max(wss, key=wss.get) if wss else ks.workspace_id,
    }
    return read_gb + export_gb, f
