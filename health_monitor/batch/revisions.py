"""The late-billing correction pass: cost windows judged again when their late billing arrives.

About 28% of billing rows arrive one to seven days after their hour, so the cost stream (which
waits 3 hours) judges each window with part of its spend missing and never sees the rest. The
evaluation already judges each window again as its late rows arrive (window revisions,
:mod:`health_monitor.features.windows`; the operating point
:func:`~health_monitor.batch.algorithms.anomaly.revision_flags`). This batch pass does the same
in the product, once a day:

1. replays the recent horizon of Gold (:data:`HORIZON_DAYS`, billing's lateness; with
   :data:`HISTORY_DAYS` of history before it for the keys' baselines) into cost windows and
   their revisions, with the code that builds ``cost_window_features``;
2. scores every window of the horizon with the serving champion of ``cost_anomaly_detector``
   and applies the evaluation's operating point (the model's threshold and ``min_windows``, pass
   by pass, a window alerts at most once; what revision 0 flags counts as raised by the stream);
3. writes the windows first flagged in a revision (1 or later) to ``monitor.alerts`` through the
   alert store, with the alert id the stream gives the key-window (:func:`alert_id_for`), so a
   window the stream already alerted on is folded into its incident, not duplicated.

Exactly once: the write carries Delta's ``txnAppId`` :data:`APP_ID` and ``txnVersion`` = the pass
day's ordinal (:func:`txn_version`), one commit per pass: a re-run for the same day (or an older
one) is skipped by Delta, a crash before the commit leaves nothing, and windows already inside an
incident of the same key are dropped before the write (:func:`not_yet_alerted`), so tomorrow's
pass, which sees the same windows again, adds nothing for them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from health_monitor.alerts.build import (
    _evidence_list,
    _money,
    alert_record,
    detector_only_severity,
    summarize,
)
from health_monitor.alerts.policy import _num, detector_alert_type
from health_monitor.catalog import get_model
from health_monitor.features import GoldInputs
from health_monitor.features.windows import ARRIVAL
from health_monitor.gold.schemas import GOLD_TABLES
from health_monitor.streaming.tables import ALERTS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from health_monitor.runtime import Lakehouse

MODEL = "cost_anomaly_detector"
DOMAIN = "cost"
#: The Delta transaction app id of the pass's alert writes (its versions: :func:`txn_version`).
APP_ID = "health-monitor-cost-revisions"
#: Days of windows judged again: billing's rows arrive up to 7 days late, plus the day itself.
HORIZON_DAYS = 8
#: Days of Gold before the horizon that the replay reads for the keys' history (baselines look
#: back 7-30 days; a key's age and its finished units are counted from this far back only).
HISTORY_DAYS = 45


@dataclass
class RevisionReport:
    """What one correction pass did."""

    day: dt.date
    version: str | None = None
    windows: int = 0
    revised: int = 0
    flagged: int = 0
    written: int = 0
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """Human-readable summary."""
        if self.version is None:
            return [f"revision pass for {self.day}: not run", *self.notes]
        return [f"revision pass for {self.day} ({MODEL} v{self.version}): {self.windows} windows in the horizon, "
                f"{self.revised} revisions judged, {self.flagged} windows first flagged in a revision, "
                f"{self.written} alert rows written", *self.notes]


def txn_version(day: dt.date) -> int:
    """The pass's Delta transaction version for ``day``: grows with the day, so a re-run of a
    day already applied (or of an earlier day) is skipped by Delta."""
    return day.toordinal()


def horizon_start(day: dt.date, horizon_days: int = HORIZON_DAYS) -> pd.Timestamp:
    """The first window start judged by the pass for ``day`` (midnight: whole key-days)."""
    return pd.Timestamp(day) + pd.Timedelta(days=1) - pd.Timedelta(days=horizon_days)


def late_text(rows: int, arrived: Any, added_usd: float) -> str:
    """The evidence line of a re-judged window."""
    day = "an unknown day" if arrived is None or pd.isna(arrived) else pd.Timestamp(arrived).date().isoformat()
    verb = "added" if added_usd >= 0 else "taken off"
    return f"re-judged on {rows} late billing row{'s' if rows != 1 else ''} arrived {day}: " \
           f"{_money(abs(added_usd))} {verb}"


def expected_usd(row: dict[str, Any]) -> float | None:
    """The window's usual spend: the larger of the key's routine at this hour and its 7-day mean
    (the denominator of ``routine_ratio``), None where neither is known."""
    vals = [v for v in (_num(row.get("baseline_hour_usd")), _num(row.get("baseline_7d"))) if v is not None]
    return max(vals) if vals else None


def revision_alerts(flagged: pd.DataFrame, version: str, threshold: float, now: dt.datetime) -> pd.DataFrame:
    """Candidate alerts (``monitor.alerts`` contract) of windows first flagged in a revision.

    ``flagged``: window rows (the window table's columns, ``revision``, ``score`` and the late
    rows' ``late_rows``, ``late_arrived``, ``late_usd``). Alert type, id, severity and summary are
    the stream's for a detector-only alert of the key-window; the evidence says it was re-judged."""
    alert_type = detector_alert_type(DOMAIN)
    now_ts = pd.Timestamp(now).tz_localize(None) if pd.Timestamp(now).tzinfo else pd.Timestamp(now)
    out = []
    for row in flagged.to_dict("records"):
        score = float(row["score"])
        value, expected = _num(row.get("value")), expected_usd(row)
        row = row | {"expected": expected}
        impact = max(value - expected, 0.0) if value is not None and expected is not None else None
        unit_risk = _num(row.get("unit_usd_at_risk"))
        if unit_risk is not None:
            impact = max(impact or 0.0, unit_risk)
        severity, why = detector_only_severity(score, DOMAIN, row, impact, None)
        late = late_text(int(row.get("late_rows") or 0), row.get("late_arrived"), float(row.get("late_usd") or 0.0))
        summary = summarize(DOMAIN, alert_type, row, None, why)
        deviation = (100.0 * (value - expected) / abs(expected)
                     if value is not None and expected not in (None, 0.0) else None)
        out.append(alert_record(
            row, DOMAIN, alert_type, MODEL, str(version), score, severity, deviation, impact,
            f"{summary[:-1]}; {late}.",
            _evidence_list([late, f"model:{MODEL} v{version}",
                            f"revision {int(row['revision'])} score {score:.2f} >= {threshold:.2f}"]),
            now_ts))
    return pd.DataFrame(out, columns=ALERTS.column_names)


def not_yet_alerted(existing: pd.DataFrame, candidates: pd.DataFrame) -> pd.DataFrame:
    """The candidates whose window is not already inside an incident of the same key and domain
    (any alert type: the store folds a detector-only window into the key's rule-typed incident
    too). Such a window would only touch its incident's ``updated_at``: the pass seeing it again
    the next day is not news."""
    if candidates.empty or existing is None or existing.empty:
        return candidates
    ex = existing.assign(_s=pd.to_datetime(existing["window_start"]), _e=pd.to_datetime(existing["window_end"]))
    for c in ("_s", "_e"):
        if ex[c].dt.tz is not None:
            ex[c] = ex[c].dt.tz_convert("UTC").dt.tz_localize(None)
    keep = []
    for cand in candidates.to_dict("records"):
        s, e = pd.Timestamp(cand["window_start"]), pd.Timestamp(cand["window_end"])
        inside = ex[(ex["entity_type"] == cand["entity_type"]) & (ex["entity_id"] == cand["entity_id"])
                    & (ex["domain"] == cand["domain"]) & (ex["_s"] <= s) & (ex["_e"] >= e)]
        keep.append(inside.empty)
    return candidates[np.asarray(keep, dtype=bool)].reset_index(drop=True)


class RecentGold(GoldInputs):
    """Gold inputs cut below at ``since`` (event time) as well as above at ``as_of``: the pass
    replays the recent past only. A row that says when it arrived (:data:`ARRIVAL`) is read only
    if it arrived before ``as_of``: a pass run again for a past day (a backfill, a replayed
    estate) sees what had arrived by then, not billing that came later."""

    def __init__(self, lake: Lakehouse, since: dt.datetime, as_of: dt.datetime) -> None:
        super().__init__(lake, as_of)
        self.since = since

    def get(self, name: str, required: bool = True) -> DataFrame | None:
        """The table as :class:`GoldInputs` reads it, from ``since`` on (tables with an event time)."""
        from pyspark.sql import functions as F

        fresh = name not in self._cache
        df = super().get(name, required)
        table = GOLD_TABLES.get(name)
        if fresh and df is not None and table is not None and table.event_time:
            df = df.where(F.col(table.event_time) >= F.lit(self.since))
            if name in ARRIVAL and ARRIVAL[name][1] in df.columns and self.as_of is not None:
                arrived = F.col(ARRIVAL[name][1]).cast("timestamp")
                df = df.where(arrived.isNull() | (arrived < F.lit(self.as_of)))
            self._cache[name] = df
        return df


def _late_rows(gold: Any, flagged: pd.DataFrame) -> pd.DataFrame:
    """Per flagged window (key, start, revision): how many of its billing rows arrived after it
    closed, the last day they arrived and their cost (Spark: the revision's input rows that were
    not in the window at close, joined to ``fact_usage`` for their arrival)."""
    from pyspark.sql import functions as F

    from health_monitor.features.windows import revision_input

    key = ["entity_type", "entity_id"]
    spark = gold.lake.spark
    at_close = revision_input(gold, DOMAIN, 0).select(*key, "record_id")
    arrival = gold.get("fact_usage").select("record_id", F.col("ingestion_date").cast("date").alias("_arr"))
    parts = []
    for r in sorted(set(flagged["revision"].astype(int))):
        want = spark.createDataFrame(
            flagged.loc[flagged["revision"] == r, [*key, "window_start"]].astype({"window_start": "datetime64[ns]"}),
            "entity_type string, entity_id string, window_start timestamp")
        rows = (revision_input(gold, DOMAIN, r).withColumn("window_start", F.date_trunc("hour", "event_time"))
                .join(F.broadcast(want), [*key, "window_start"])
                .join(at_close, [*key, "record_id"], "left_anti")
                .join(arrival, "record_id", "left"))
        parts.append(rows.groupBy(*key, "window_start").agg(
            F.count("*").alias("late_rows"), F.max("_arr").alias("late_arrived"),
            F.sum("cost").alias("late_usd")).withColumn("revision", F.lit(r)).toPandas())
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=[*key, "window_start", "late_rows", "late_arrived", "late_usd", "revision"])
    out["window_start"] = pd.to_datetime(out["window_start"])
    return out


def revision_pass(lake: Lakehouse, date: dt.date | str | None = None, horizon_days: int = HORIZON_DAYS,
                  history_days: int = HISTORY_DAYS, now: dt.datetime | None = None) -> RevisionReport:
    """Judge the recent cost windows again on their late billing and alert on the ones the stream
    could not have flagged (module docstring).

    Args:
        lake: the lakehouse (Gold ``fact_usage``, the model registry, ``monitor.alerts``).
        date: the pass day (default: Gold's last usage day); Gold rows with an event time after it
            are not read.
        horizon_days: days of windows judged, ending with ``date``.
        history_days: days of Gold read before the horizon for the keys' history.
        now: the time stamped on new alerts (default: now, UTC).

    Returns:
        A :class:`RevisionReport` (windows judged, flagged, alert rows written).
    """
    from pyspark.sql import functions as F

    from health_monitor.alerts.store import LAYER, MAX_SUPPRESSION_GAP, apply_alerts
    from health_monitor.batch.evaluation import detector_flags
    from health_monitor.batch.registry import CHAMPION, alias_version, load_champion
    from health_monitor.batch.scoring import _as_date
    from health_monitor.batch.trainer import signature_frame
    from health_monitor.features.windows import window_feature_frame

    day = _as_date(date, lake)
    spec = get_model(MODEL)
    report = RevisionReport(day)
    if not lake.exists("fact_usage", "gold"):
        report.notes.append("no Gold fact_usage: nothing to judge")
        return report
    version = alias_version(lake.settings, spec, CHAMPION)
    if version is None:
        report.notes.append(f"no champion of {MODEL} in the registry: run 'health-monitor train'")
        return report
    pyfunc = load_champion(lake.settings, MODEL)
    model = pyfunc.unwrap_python_model().model
    threshold = float(getattr(model, "threshold", 0.6))
    min_windows = int(model.params.get("min_windows", 1))

    start = horizon_start(day, horizon_days)
    end = pd.Timestamp(day) + pd.Timedelta(days=1)
    gold = RecentGold(lake, (start - pd.Timedelta(days=history_days)).to_pydatetime(), end.to_pydatetime())
    gold.driving = "fact_usage"
    frame = window_feature_frame(gold, DOMAIN).where(F.col("window_start") >= F.lit(start.to_pydatetime()))
    rows = frame.toPandas()
    report.version = version
    report.windows = int((rows["revision"] == 0).sum()) if len(rows) else 0
    report.revised = int((rows["revision"] > 0).sum()) if len(rows) else 0
    if rows.empty or report.revised == 0:
        report.notes.append("no window in the horizon was changed by late billing")
        return report
    rows = rows.reset_index(drop=True)
    pred = pyfunc.predict(signature_frame(rows, list(spec.features)))
    flags = detector_flags(spec, pred, threshold, rows, min_windows)
    # Flags at revision 0 are the stream's to raise; the pass raises what only late billing shows.
    first = flags & (rows["revision"].to_numpy() >= 1)
    flagged = rows[first].assign(score=pred[spec.outputs[0]].to_numpy(dtype=float)[first]).reset_index(drop=True)
    report.flagged = len(flagged)
    if flagged.empty:
        return report
    flagged["window_start"] = pd.to_datetime(flagged["window_start"])
    late = _late_rows(gold, flagged)
    flagged = flagged.merge(late, on=["entity_type", "entity_id", "window_start", "revision"], how="left")
    cands = revision_alerts(flagged, version, threshold, now or dt.datetime.now(dt.UTC))
    if lake.exists(ALERTS.name, LAYER):
        since = (start - MAX_SUPPRESSION_GAP).to_pydatetime().replace(tzinfo=dt.UTC)
        existing = (lake.read(ALERTS.name, LAYER).where((F.col("domain") == DOMAIN) & (F.col("window_end") >= since))
                    .select("entity_type", "entity_id", "domain", "window_start", "window_end").toPandas())
        fresh = not_yet_alerted(existing, cands)
        if len(fresh) < len(cands):
            report.notes.append(f"{len(cands) - len(fresh)} flagged windows are already inside an alert")
        cands = fresh
    report.written = apply_alerts(lake, cands, txn_version(day), APP_ID) if len(cands) else 0
    if len(cands) and report.written == 0:
        report.notes.append(f"the pass for {day} (or a later day) was already applied: nothing written")
    return report
