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
    counters per window with NumPy, then the sets and per-statement bytes over only the rows that
    carry them. Most windows hold a row or two, so what is left per window is kept to a dict
    update: a new window's accumulator is built in one literal (same keys, order and types)."""
    seg = Segments.of(open_, starts)
    counters = _sec_counters(g, seg)
    names = list(counters)
    counts = [seg.counts(m) for m in counters.values()]
    eb = seg.floats(g["export_bytes"])
    eb = np.where(np.isnan(eb), 0.0, eb)
    exports = counters["export_count"]
    # a window's exported bytes, summed by NumPy as before, only where it has exports (else 0.0)
    n_exp = counts[names.index("export_count")]
    lo_, hi_ = seg.lo.tolist(), seg.hi.tolist()
    ebytes = [float(eb[lo:hi][exports[lo:hi]].sum()) if n else 0.0
              for lo, hi, n in zip(lo_, hi_, n_exp, strict=True)]
    lineage = seg.take(g["source"] == "lineage")
    sens = lineage & seg.take(_flags(g["is_sensitive"]) & _flags(g["is_read"]))
    sens_counts = seg.counts(sens)
    for acc, vals, b, sr in zip(seg.accs, zip(*counts, strict=True), ebytes, sens_counts, strict=True):
        if not acc:  # a new window: the keys in the order the per-key updates below create them
            acc.update(zip(names, vals, strict=True))
            acc.update(export_bytes=0 + b, ips=set(), tables=set(), sensitive_reads=0 + sr,
                       sensitive_tables=set(), statements={}, workspaces={})
            continue
        for k, v in zip(names, vals, strict=True):
            acc[k] = acc.get(k, 0) + v
        acc["export_bytes"] = acc.get("export_bytes", 0) + b
        acc.setdefault("ips", set())
        acc.setdefault("tables", set())
        acc["sensitive_reads"] = acc.get("sensitive_reads", 0) + sr
        acc.setdefault("sensitive_tables", set())
        acc.setdefault("statements", {})
        acc.setdefault("workspaces", {})
    win = np.repeat(np.arange(len(seg.accs)), seg.hi - seg.lo)
    accs = seg.accs
    # addresses of audit rows, in row order (a set's layout follows the order of its first adds)
    ip = seg.take(g["ip"])
    at = np.flatnonzero(counters["events"] & seg.take(g["ip"].notna().to_numpy()))
    for w, v in zip(win[at].tolist(), ip[at].tolist(), strict=True):
        accs[w]["ips"].add(v)
    at = np.flatnonzero(lineage)
    if len(at):
        table, sid = seg.take(g["table_name"])[at].tolist(), seg.take(g["statement_id"])[at].tolist()
        has_table = seg.take(g["table_name"].notna().to_numpy())[at].tolist()
        has_sid = seg.take(g["statement_id"].notna().to_numpy())[at].tolist()
        read_bytes = seg.take(g["read_bytes"])[at].tolist()
        for j, (w, sr) in enumerate(zip(win[at].tolist(), sens[at].tolist(), strict=True)):
            acc = accs[w]
            if has_table[j]:
                acc["tables"].add(table[j])
                if sr:
                    acc["sensitive_tables"].add(table[j])
            if has_sid[j]:
                stm, b = acc["statements"], read_bytes[j]
                stm[sid[j]] = max(stm.get(sid[j], 0.0), 0.0 if b is None or b != b else float(b))
    _count_workspaces(accs, win, seg.take(g["workspace_id"]), seg.take(g["workspace_id"].notna().to_numpy()))


def _count_workspaces(accs: list[dict], win: np.ndarray, ws: np.ndarray, has_ws: np.ndarray) -> None:
    """Add each window's rows per workspace into its ``workspaces`` dict: most rows first, ties in
    order of first appearance in the window (as ``value_counts`` ordered them), counted per
    (window, workspace) pair with NumPy instead of a dict per window."""
    at = np.flatnonzero(has_ws)
    if not len(at):
        return
    vals = ws[at]
    codes, uniq = pd.factorize(vals)
    pair = win[at].astype(np.int64) * len(uniq) + codes
    keys, first, n = np.unique(pair, return_index=True, return_counts=True)
    w_of = keys // len(uniq)
    # per window: count descending, then first appearance (rows are in window order)
    order = np.lexsort((first, -n, w_of))
    # each value as the window's first row holds it (the same object: the pickle shares it)
    for w, c, v in zip(w_of[order].tolist(), n[order].tolist(), vals[first[order]].tolist(), strict=True):
        wss = accs[w]["workspaces"]
        wss[v] = wss.get(v, 0) + c


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
