"""Scored-window rows for the alert tests of both tiers (building in tests/unit, storing in
tests/integration): one hand-made cost window and the candidates the rules and policy make of it."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from health_monitor.rules import load_rules
from health_monitor.streaming.alerts import make_alerts

NOW = datetime(2026, 11, 26, 16, 0)
RULES = load_rules(None)


def cost_window(hour: int, cost: float, expected: float = 120.0, score: float = 0.9,
                workspace: str = "ws-prod-01", **extra: object) -> dict:
    start = pd.Timestamp("2026-11-26 00:00") + pd.Timedelta(hours=hour)
    row = {
        "entity_type": "workspace", "entity_id": workspace, "workspace_id": workspace,
        "window_start": start, "window_end": start + pd.Timedelta(hours=1),
        "value": cost, "expected": expected, "score": score,
        "model_name": "cost_online", "model_version": "3", "evidence": ["zscore_7d=5.2", "ratio_7d=3.4"],
        "cost_usd": cost, "baseline_7d": expected, "ratio_7d": cost / expected,
        "top_job": "nightly_etl", "top_sku": "JOBS_COMPUTE",
    }
    row.update(extra)
    return row


def candidates(*rows: dict, domain: str = "cost") -> pd.DataFrame:
    scored = pd.DataFrame(list(rows))
    return make_alerts(scored, RULES.evaluate(domain, scored), domain, now=NOW)
