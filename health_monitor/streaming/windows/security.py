"""Security windows: a user's hour of audit and lineage events against the user's own weekly pattern."""

from __future__ import annotations

from collections import deque

import numpy as np
import pandas as pd

from health_monitor.streaming.windows.state import (
    DAY_MS,
    HOUR_MS,
    KeyState,
    Segments,
    _flags,
    _ms,
    _ts,
)


def _sec_counters(g: pd.DataFrame, seg: Segments) -> dict[str, np.ndarray]:
    """Per row (in ``seg.order``), whether it counts towards each of a window's event counters.

    The window's counters, in the order the accumulator keeps them: a new counter is one more
    entry here (nulls in the flag columns count as False)."""
    audit = seg.take(g["source"] == "audit")
    ms = _ms(g["event_time"])[seg.order]
    hour = (ms // HOUR_MS) % 24
    off = (hour < 6) | (hour >= 22)
    weekend = (ms // DAY_MS + 3) % 7 >= 5  # 1970-01-01 was a Thursday (Monday = 0)

    def flag(c: str) -> np.ndarray:
        return audit & seg.take(_flags(g[c]))

    login, admin = flag("is_login"), flag("is_admin")
    return {
        "events": audit,
        "logins": login,
        "failed_logins": login & seg.take(_flags(g["is_failed"])),
        "off_hours_events": audit & off,
        "weekend_events": audit & weekend,
        "admin_actions": admin,
        "off_hours_admin_actions": admin & off,
        "grants": flag("is_grant"),
        "self_grants": flag("is_self_grant"),
        "export_count": flag("is_export"),
    }


def _sec_accumulate(open_: dict[int, dict], g: pd.DataFrame, starts: np.ndarray) -> None:
    """Fold one call's audit and lineage rows into the user's hourly windows, all hours at once:
    counters per window with NumPy, then the sets and per-statement bytes in one pass over rows."""
    seg = Segments.of(open_, starts)
    counters = _sec_counters(g, seg)
    counts = {k: seg.counts(m) for k, m in counters.items()}
    eb = seg.floats(g["export_bytes"])
    eb = np.where(np.isnan(eb), 0.0, eb)
    exports = counters["export_count"]
    lineage = seg.take(g["source"] == "lineage")
    sens = lineage & seg.take(_flags(g["is_sensitive"]) & _flags(g["is_read"]))
    sens_counts = seg.counts(sens)
    for w, (acc, lo, hi) in enumerate(zip(seg.accs, seg.lo.tolist(), seg.hi.tolist(), strict=True)):
        for k, v in counts.items():
            acc[k] = acc.get(k, 0) + v[w]
        acc["export_bytes"] = acc.get("export_bytes", 0) + float(eb[lo:hi][exports[lo:hi]].sum())
        acc.setdefault("ips", set())
        acc.setdefault("tables", set())
        acc["sensitive_reads"] = acc.get("sensitive_reads", 0) + sens_counts[w]
        acc.setdefault("sensitive_tables", set())
        acc.setdefault("statements", {})
        acc.setdefault("workspaces", {})
    win = seg.window_of_rows()
    accs = seg.accs
    ip, table, sid = (seg.take(g[c]).tolist() for c in ("ip", "table_name", "statement_id"))
    has_ip, has_table, has_sid = (seg.take(g[c].notna()).tolist() for c in ("ip", "table_name", "statement_id"))
    read_bytes = seg.take(g["read_bytes"]).tolist()
    ws, has_ws = seg.take(g["workspace_id"]).tolist(), seg.take(g["workspace_id"].notna()).tolist()
    per_ws: list[dict] = [{} for _ in accs]
    for i, (a, ln, sr) in enumerate(zip(counters["events"].tolist(), lineage.tolist(), sens.tolist(), strict=True)):
        acc = accs[win[i]]
        if a and has_ip[i]:
            acc["ips"].add(ip[i])
        if ln and has_table[i]:
            acc["tables"].add(table[i])
            if sr:
                acc["sensitive_tables"].add(table[i])
        if ln and has_sid[i]:
            stm, b = acc["statements"], read_bytes[i]
            stm[sid[i]] = max(stm.get(sid[i], 0.0), 0.0 if b is None or b != b else float(b))
        if has_ws[i]:
            c = per_ws[win[i]]
            c[ws[i]] = c.get(ws[i], 0) + 1
    for acc, c in zip(accs, per_ws, strict=True):
        wss = acc["workspaces"]
        # most rows first, ties in order of appearance (as value_counts ordered them)
        for w, n in sorted(c.items(), key=lambda kv: -kv[1]):
            wss[w] = wss.get(w, 0) + n


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
