"""``health-monitor detect``: any CSV in, every row out with a score; bad input is one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from health_monitor.cli import main

DATA = Path(__file__).parents[1] / "data" / "detect"


def detect(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    rc = main(["detect", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_scores_every_row_sorted_with_original_columns(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    src = DATA / "cpu_5min.csv"
    rc, out, _ = detect(capsys, str(src), "--output", str(tmp_path / "s.csv"))
    assert rc == 0
    raw = pd.read_csv(src, dtype=str)
    res = pd.read_csv(tmp_path / "s.csv", dtype=str)
    assert list(res.columns) == [*raw.columns, "anomaly_score", "is_anomaly", "alarm"]
    assert len(res) == len(raw)
    assert res["ts"].tolist() == sorted(raw["ts"])  # sorted by time, original text kept
    score = res["anomaly_score"].astype(float)
    assert score.between(0, 1).all()
    flagged = res.loc[res["is_anomaly"] == "True", "ts"].tolist()
    assert "2026-02-04T10:20:00Z" in flagged  # the planted spike (row 700)
    assert len(flagged) <= 8  # the spike and the first rows of the level shift, no storm
    alarms = res.loc[res["alarm"] == "True", "ts"].tolist()
    assert alarms == flagged  # the spike and the shift, a day apart: two incidents, two alarms
    assert "rows scored" in out and "top scores" in out and "ANOMALY" in out


def test_epoch_timestamps_and_label_column_kept(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    rc, out, _ = detect(capsys, str(DATA / "daily_epoch_labeled.csv"), "-o", str(tmp_path / "s.csv"))
    assert rc == 0
    res = pd.read_csv(tmp_path / "s.csv")
    assert {"is_anomaly_input", "is_anomaly", "anomaly_score"} <= set(res.columns)
    top = res.sort_values("anomaly_score", ascending=False).iloc[0]
    assert top["is_anomaly_input"] == 1 and bool(top["is_anomaly"])
    assert "kept as 'is_anomaly_input'" in out


def test_unsorted_duplicates_nan_and_explicit_columns(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    rng = np.random.default_rng(4)
    n = 120
    df = pd.DataFrame({
        "When": pd.date_range("2026-01-01", periods=n, freq="D").strftime("%d %b %Y"),
        "count": rng.poisson(20, n).astype(str),
        "revenue": [f"${x:,.2f}" for x in 5000 + rng.normal(0, 100, n)],
    })
    df.loc[100, "revenue"] = "$9,999.00"
    df.loc[50, "revenue"] = ""
    df = pd.concat([df, df.iloc[[10]]]).sample(frac=1, random_state=3)  # a duplicate, shuffled
    df.to_csv(tmp_path / "in.csv", index=False)
    rc, _, _ = detect(capsys, str(tmp_path / "in.csv"), "--timestamp-col", "when", "--value-col",
                      "REVENUE", "--threshold", "0.9", "-o", str(tmp_path / "s.csv"))
    assert rc == 0
    res = pd.read_csv(tmp_path / "s.csv", dtype=str)
    assert len(res) == n + 1
    times = pd.to_datetime(res["When"], format="%d %b %Y")
    assert times.is_monotonic_increasing
    assert res.loc[res["revenue"] == "", "is_anomaly"].eq("False").all()
    assert res.loc[res["revenue"] == "", "anomaly_score"].astype(float).eq(0).all()
    assert res.loc[res["revenue"] == "$9,999.00", "is_anomaly"].eq("True").all()


def _write(tmp_path: Path, text: str, name: str = "in.csv") -> str:
    (tmp_path / name).write_text(text)
    return str(tmp_path / name)


BAD_INPUTS = {
    "missing file": (None, [], "does not exist"),
    "empty file": ("", [], "empty"),
    "one row": ("timestamp,value\n2026-01-01,1\n", [], "at least 2"),
    "no time column": ("a,b\nx,1\ny,2\n", [], "no timestamp column"),
    "unparseable timestamps": ("timestamp,value\n2026-01-01,1\nyesterday,2\n", [], "not timestamps"),
    "no numeric values": ("timestamp,value\n2026-01-01,a\n2026-01-02,b\n", [], "no numeric value"),
    "value column holds text": ("timestamp,value\n2026-01-01,a\n2026-01-02,b\n", ["--value-col", "value"],
                                "no numeric values"),
    "unknown column": ("timestamp,value\n2026-01-01,1\n2026-01-02,2\n", ["--value-col", "cost"],
                       "no value column 'cost'"),
    "ambiguous column": ("timestamp,value,value\n2026-01-01,1,2\n2026-01-02,2,3\n", ["--value-col", "value"],
                         "ambiguous"),
    "ambiguous case": ("timestamp,Value,VALUE\n2026-01-01,1,2\n2026-01-02,2,3\n", ["--value-col", "value"],
                       "ambiguous"),
    "same column twice": ("timestamp,value\n2026-01-01,1\n2026-01-02,2\n",
                          ["--timestamp-col", "timestamp", "--value-col", "timestamp"], "cannot be both"),
    "threshold out of range": ("timestamp,value\n2026-01-01,1\n2026-01-02,2\n", ["--threshold", "3"],
                               "between 0 and 1"),
    "negative rearm": ("timestamp,value\n2026-01-01,1\n2026-01-02,2\n", ["--rearm", "-1"], "--rearm must be"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_error(case: str, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    text, extra, message = BAD_INPUTS[case]
    path = str(tmp_path / "missing.csv") if text is None else _write(tmp_path, text)
    rc, _, err = detect(capsys, path, *extra, "-o", str(tmp_path / "s.csv"))
    assert rc == 2
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err
    assert not (tmp_path / "s.csv").exists()


def test_missing_output_folder_is_one_line_error(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    rc, _, err = detect(capsys, str(DATA / "daily_epoch_labeled.csv"), "-o", str(tmp_path / "no" / "s.csv"))
    assert rc == 2 and "output folder" in err and "Traceback" not in err


def test_value_column_preferred_over_leading_id(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    rows = "\n".join(f"{i},2026-01-{i:02d},{5 + (i % 2)}" for i in range(1, 29))
    path = _write(tmp_path, "id,timestamp,Value\n" + rows + "\n")
    rc, out, _ = detect(capsys, path, "-o", str(tmp_path / "s.csv"))
    assert rc == 0 and "value: 'Value'" in out and "other numeric columns: id" in out
