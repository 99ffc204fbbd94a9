"""Held-out evaluation of the catalog and the model report.

Models are trained on one simulated estate and measured on another one simulated with a
different seed (never seen in training or tuning): each champion is applied to the held-out
estate's last 15% of time. Models whose fitted state is tied to the estate's own entities (a
forecast of *these* workspaces' spend, chargeback pools of *these* teams) are refitted with the
champion's parameters on the held-out estate's earlier 85% instead, which measures the method
on unseen data. A champion that is a naive baseline (the model lost to it in training) is
measured as what it is. Unsupervised detectors are additionally scored against the held-out
estate's ``ground_truth_incidents`` at their operating point (the flag they actually raise,
score >= the calibrated threshold): the only place that table is read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from health_monitor.batch.algorithms.anomaly import BATCH_THRESHOLD, revision_flags
from health_monitor.batch.base import BatchModel
from health_monitor.batch.registry import load_champion
from health_monitor.batch.trainer import TrainResult, fit_model, load_feature_frame, time_split
from health_monitor.catalog import ModelSpec
from health_monitor.runtime import Lakehouse
from health_monitor.settings import Settings

#: Trainers whose fitted state describes the training estate's own entities: refit per estate.
REFIT_TRAINERS = {"budget_forecast", "quality_forecast", "chargeback"}

#: Detector -> how its rows meet ground-truth incidents: (row entity column, incident column,
#: incident domain, incident types counted for recall (None: all of the domain), day column).
GROUND_TRUTH_MATCH = {
    "cost_anomaly_detector": ("workspace_id", "workspace_id", "cost", None, "window_start"),
    "security_threat_detector": ("user_id", "entity_id", "security", None, "window_start"),
    "data_exfiltration_detector": ("user_id", "entity_id", "security", ("bulk_exfiltration",), "window_start"),
    "user_behavior_baseline": ("user_id", "entity_id", "security", None, "event_date"),
    "schema_drift_detector": ("table_full_name", "entity_id", "quality", ("breaking_schema_change",),
                              "snapshot_date"),
}


@dataclass
class ReportRow:
    """One model's line in the report."""

    name: str
    domain: str
    key_metric: str
    target: str
    metric: float | None
    baseline: float | None
    meets_target: bool | None
    beats_baseline: bool | None
    how: str
    gt_precision: float | None = None
    gt_recall: float | None = None
    rows: int = 0
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)
    serving: str = "model"
    gt_flagged: int | None = None
    gt_incidents: int | None = None


def _clean(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


@dataclass
class OperatingPoint:
    """Flagged entity-days against ground-truth incidents at a detector's own threshold
    (``flagged``: entity-days, :func:`entity_days`)."""

    precision: float | None
    recall: float | None
    flagged: int
    incidents: int


def operating_point(spec: ModelSpec, rows: pd.DataFrame, flagged: np.ndarray, incidents: pd.DataFrame
                    ) -> OperatingPoint:
    """Precision (flagged rows inside an incident of the row's entity and day) and recall (share
    of incidents with at least one flagged row) of ``flagged`` (evaluation only)."""
    precision, recall = ground_truth_scores(spec, rows, flagged, incidents)
    n_inc = 0
    if spec.name in GROUND_TRUTH_MATCH and not incidents.empty:
        _, _, domain, types, _ = GROUND_TRUTH_MATCH[spec.name]
        inc = incidents[incidents["domain"] == domain]
        n_inc = int(len(inc) if types is None else inc["incident_type"].isin(types).sum())
    n_flagged = len(entity_days(spec, rows.reset_index(drop=True), flagged)) if spec.name in GROUND_TRUTH_MATCH \
        else int(np.count_nonzero(flagged))
    return OperatingPoint(precision, recall, n_flagged, n_inc)


def detector_flags(spec: ModelSpec, pred: pd.DataFrame, threshold: float = BATCH_THRESHOLD,
                   rows: pd.DataFrame | None = None, min_windows: int = 1) -> np.ndarray:
    """The flag a detector raises: score >= its threshold on the calibrated scale (its boolean
    output; the behaviour baseline outputs a score only), and, where the detector asks for
    ``min_windows`` > 1, on at least that many rows of the key's day; a window judged again when
    its late rows arrived (a ``revision`` column) alerts once, at the first pass that flags it
    (:func:`~health_monitor.batch.algorithms.anomaly.revision_flags`; ``rows`` carry the keys,
    times and revisions the model's inputs lack)."""
    if spec.name == "user_behavior_baseline":
        flags = pred["deviation_score"].to_numpy(dtype=float) >= threshold
    else:
        flags = pred[spec.outputs[1]].astype(bool).to_numpy()
    if min_windows > 1 or (rows is not None and "revision" in rows.columns):
        if rows is None:
            raise ValueError(f"{spec.name}: min_windows {min_windows} needs the rows' keys and times")
        flags = revision_flags(rows.reset_index(drop=True), flags.astype(float), 0.5, list(spec.entity_keys),
                               spec.time_key, min_windows)
    return flags


def _utc_day(col: pd.Series) -> pd.Series:
    """Timestamps (naive UTC, as Spark hands them over, or zone-aware) -> naive UTC days."""
    t = pd.to_datetime(col)
    if t.dt.tz is not None:
        t = t.dt.tz_convert("UTC").dt.tz_localize(None)
    return t.dt.normalize()


def entity_days(spec: ModelSpec, rows: pd.DataFrame, flagged: np.ndarray) -> pd.DataFrame:
    """The flagged rows rolled up to entity-days: one row per (entity, UTC day) with at least one
    flagged row (an hourly window, a snapshot), carrying the columns ground truth is matched on.

    The window tables hold one row per key and hour; an analyst reviews an entity's day, so a
    day with five flagged hours of one job is one flag, not five (precision counts entity-days).
    """
    row_col, _, _, _, day_col = GROUND_TRUTH_MATCH[spec.name]
    keys = list(dict.fromkeys([row_col, *(k for k in spec.entity_keys if k in rows.columns)]))
    hit = rows.loc[np.asarray(flagged, dtype=bool), keys].copy()
    hit["day"] = _utc_day(rows.loc[np.asarray(flagged, dtype=bool), day_col])
    return hit.drop_duplicates([*keys, "day"]).reset_index(drop=True)


def ground_truth_scores(spec: ModelSpec, rows: pd.DataFrame, flagged: np.ndarray, incidents: pd.DataFrame
                        ) -> tuple[float | None, float | None]:
    """(precision, recall) of flagged entity-days against incidents (evaluation only): precision =
    share of flagged entity-days (:func:`entity_days`) inside an incident of their entity,
    recall = share of incidents with at least one flagged entity-day."""
    if spec.name not in GROUND_TRUTH_MATCH or incidents.empty:
        return None, None
    row_col, inc_col, domain, types, _ = GROUND_TRUTH_MATCH[spec.name]
    inc = incidents[incidents["domain"] == domain].copy()
    inc["key"] = inc[inc_col].astype(str).str.lower()
    inc["d0"] = _utc_day(inc["start_time"])
    inc["d1"] = _utc_day(inc["end_time"])
    days = entity_days(spec, rows.reset_index(drop=True), np.asarray(flagged, dtype=bool))
    by_key = {k: g for k, g in inc.groupby("key")}
    found: set = set()
    tp = 0
    for key, day in zip(days[row_col].astype(str).str.lower(), days["day"], strict=True):
        g = by_key.get(key)
        if g is None:
            continue
        match = g[(g["d0"] <= day) & (g["d1"] >= day)]
        tp += int(len(match) > 0)
        found.update(match["incident_id"])
    precision = tp / len(days) if len(days) else None
    wanted = inc if types is None else inc[inc["incident_type"].isin(types)]
    recall = len(found & set(wanted["incident_id"])) / len(wanted) if len(wanted) else None
    return precision, recall


def _unwrap(settings: Settings, spec: ModelSpec) -> BatchModel:
    return load_champion(settings, spec.name).unwrap_python_model().model


def evaluate_held_out(train_settings: Settings, eval_lake: Lakehouse, specs: list[ModelSpec],
                      trained: dict[str, TrainResult] | None = None) -> list[ReportRow]:
    """Score each catalog champion (from ``train_settings``' registry) on ``eval_lake``."""
    incidents = (eval_lake.read("ground_truth_incidents", "simulator").toPandas()
                 if eval_lake.exists("ground_truth_incidents", "simulator") else pd.DataFrame())
    frames: dict[str, pd.DataFrame] = {}
    out = []
    for spec in specs:
        if spec.feature_table not in frames:
            frames[spec.feature_table] = load_feature_frame(eval_lake, spec.feature_table)
        frame = frames[spec.feature_table]
        champion = _unwrap(train_settings, spec)
        note = ""
        if spec.trainer in REFIT_TRAINERS:
            model, splits = fit_model(spec, frame, champion.params)
            if champion.naive_:
                model = model.naive(servable=False)
            test = splits["test"]
            how = "refit on held-out estate (entity-bound), last 15%"
        else:
            model = champion
            rows = model.row_filter(frame)
            if model.params.get("split") == "entity":
                test = rows  # one row per entity: every held-out entity is unseen
                how = "champion, all held-out entities"
            else:
                test = time_split(rows, spec.time_key)[2]
                how = "champion, held-out estate last 15%"
        metrics = model.evaluate(test) if len(test) else {}
        base = model.evaluate_baseline(test) if len(test) else {}
        value, bvalue = _clean(metrics.get(spec.key_metric)), _clean(base.get(spec.key_metric))
        op = None
        if spec.name in GROUND_TRUTH_MATCH:
            pred = model.predict(frame[model.features].reset_index(drop=True))
            flags = detector_flags(spec, pred, getattr(model, "threshold", BATCH_THRESHOLD), frame,
                                   int(model.params.get("min_windows", 1)))
            op = operating_point(spec, frame.reset_index(drop=True), flags, incidents)
        # "beats baseline" reads "not worse": the rule champions are promoted by.
        out.append(ReportRow(
            spec.name, spec.domain, spec.key_metric, spec.target_text, value, bvalue, spec.meets_target(value),
            None if value is None or bvalue is None else not spec.beats(bvalue, value), how,
            _clean(op.precision) if op else None, _clean(op.recall) if op else None,
            len(test), note, {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)},
            serving="naive baseline" if model.naive_ else "model",
            gt_flagged=op.flagged if op else None, gt_incidents=op.incidents if op else None))
    return out


def _f(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def render_report(rows: list[ReportRow], header: str, reasons: dict[str, str] | None = None) -> str:
    """Markdown report: metric next to target and baseline, plus ground truth for detectors."""
    reasons = reasons or {}
    lines = [header, "",
             "| model | domain | serving | metric | held-out | target | meets target | baseline | not worse than baseline "
             "| GT precision | GT recall | flagged / incidents | rows | how measured |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    yn = lambda b: "-" if b is None else ("yes" if b else "**no**")  # noqa: E731
    for r in rows:
        counts = "-" if r.gt_flagged is None else f"{r.gt_flagged} / {r.gt_incidents}"
        lines.append(f"| {r.name} | {r.domain} | {r.serving} | {r.key_metric} | {_f(r.metric)} | {r.target} "
                     f"| {yn(r.meets_target)} | {_f(r.baseline)} | {yn(r.beats_baseline)} | {_f(r.gt_precision)} "
                     f"| {_f(r.gt_recall)} | {counts} | {r.rows} | {r.how} |")
    missed = [r for r in rows if r.meets_target is False or r.beats_baseline is False]
    if missed:
        lines += ["", "## Where a target or the baseline is missed, and why", ""]
        for r in missed:
            lines.append(f"- **{r.name}** ({r.key_metric} {_f(r.metric)} vs target {r.target}, baseline "
                         f"{_f(r.baseline)}): {reasons.get(r.name, 'see notes below.')}")
    return "\n".join(lines) + "\n"
