"""The HTML report: one self-contained file whose every plot renders in headless Chromium;
sections without data degrade to a note."""

from __future__ import annotations

import datetime as dt
import html
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from health_monitor.batch.budget import budget_forecast_predictions
from health_monitor.batch.recommendations import build_recommendations
from health_monitor.batch.scoring import score_all
from health_monitor.cli import main
from health_monitor.report import build_sections, write_report
from health_monitor.runtime import Lakehouse


def _day(lake: Lakehouse) -> dt.date:
    """The estate's last day with usage: the score date of these tests."""
    return lake.read("fact_usage").agg({"usage_date": "max"}).first()[0]
MODELS = ["cost_anomaly_detector", "job_failure_predictor", "pipeline_health_scorer", "job_cost_optimizer",
          "security_threat_detector"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def scored(trained_lake: Lakehouse) -> Lakehouse:
    lake = trained_lake
    score_all(lake, _day(lake), models=MODELS)
    budget_forecast_predictions(lake, _day(lake), use_prophet=False)
    build_recommendations(lake, _day(lake))
    return lake


def test_empty_lakehouse_gives_notes_not_errors(lake: Lakehouse, tmp_path: Path) -> None:
    sections = build_sections(lake)
    assert len(sections) == 7 and all(s.figure is None and s.note for s in sections)
    code = main(["--data-dir", str(lake.settings.data_dir), "report", "--output", str(tmp_path / "r.html")])
    assert code == 0
    text = html.unescape((tmp_path / "r.html").read_text())
    assert "run 'health-monitor score'" in text and "plotly" not in text.lower()


def _chromium(*args: str) -> subprocess.CompletedProcess:
    profile = tempfile.mkdtemp(prefix="chromium-")
    try:
        return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                               "--disable-background-networking", "--disable-component-update", "--no-first-run",
                               "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                               "--virtual-time-budget=20000", *args],
                              capture_output=True, text=True, timeout=240, check=False)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (CI installs it: .ci/run)")
def test_every_plot_renders_in_headless_chromium(scored: Lakehouse, tmp_path: Path) -> None:
    path, sections = write_report(scored, tmp_path / "report.html")
    drawn = [s.key for s in sections if s.figure is not None]
    assert {"budget", "anomalies", "risky_jobs", "pipeline_health", "security"} <= set(drawn)
    text = path.read_text()
    # Self-contained: no external script or stylesheet (plotly.js itself mentions its CDN in strings).
    assert not re.search(r"<(script|link)[^>]+(src|href)=[\"']?https?://", text)
    assert text.count("Plotly.newPlot") == len(drawn)
    dom = _chromium("--dump-dom", path.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    for key in drawn:
        # Plotly replaces each plot div's content with its SVG layers (main-svg) once drawn.
        block = re.search(rf'id="plot-{key}".*?(?=<section|$)', dom.stdout, re.S)
        assert block and 'class="main-svg"' in block.group(0), key
    shot = tmp_path / "report.png"
    out = _chromium("--screenshot=" + str(shot), "--window-size=1200,2400", path.as_uri())
    assert out.returncode == 0 and shot.stat().st_size > 10_000
    keep = Path(tempfile.gettempdir()) / "health-monitor-report.png"
    shutil.copy(shot, keep)  # for a person to look at after the run
