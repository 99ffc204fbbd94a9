"""No silent wrong output from detect/forecast, and one sentence (exit 2) for environment errors."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from health_monitor.cli import main
from health_monitor.cli.forecast import read_daily_csv
from health_monitor.detectors.series_io import score_csv
from health_monitor.errors import HealthMonitorError, environment_error


def _series(path: Path, values: list[str], stamp: str = "2026-01-{day:02d}T00:00:00", header: str = "ts,value",
            encoding: str = "utf-8") -> Path:
    lines = [header] + [f"{stamp.format(day=i + 1)},{v}" for i, v in enumerate(values)]
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def test_detect_notes_infinite_and_huge_values_instead_of_scoring_them_zero(tmp_path: Path) -> None:
    values = [str(10 + i % 3) for i in range(20)] + ["inf", "1e307", "12"]
    scored = score_csv(_series(tmp_path / "s.csv", values))
    note = next(n for n in scored.notes if "infinite or beyond" in n)
    assert note.startswith("2 value(s) in 'value'")
    assert scored.values.iloc[20:22].isna().all()  # not modelled, like a non-numeric value
    assert len(scored.frame) == 23  # every row kept


def test_forecast_refuses_values_it_cannot_model(tmp_path: Path) -> None:
    with pytest.raises(HealthMonitorError, match=r"beyond 1e\+100 .*line 4.*rescale"):
        read_daily_csv(_series(tmp_path / "f.csv", ["1", "2", "1e307", "3"]))
    with pytest.raises(HealthMonitorError, match="infinite"):
        read_daily_csv(_series(tmp_path / "g.csv", ["1", "2", "inf", "3"]))


def test_naive_timestamps_are_stated_as_utc(tmp_path: Path) -> None:
    naive = score_csv(_series(tmp_path / "n.csv", ["1", "2", "3"]))
    assert "timestamps have no time zone: taken as UTC" in naive.notes
    aware = score_csv(_series(tmp_path / "a.csv", ["1", "2", "3"], stamp="2026-01-{day:02d}T00:00:00Z"))
    assert not any("time zone" in n for n in aware.notes)
    mixed = tmp_path / "m.csv"
    mixed.write_text("ts,value\n2026-01-01T00:00:00Z,1\n2026-01-02T00:00:00,2\n2026-01-03T00:00:00+02:00,3\n")
    assert any(n.startswith("1 timestamp(s) have no time zone and 2 do") for n in score_csv(mixed).notes)


def test_latin1_files_are_read_with_a_note_or_the_given_encoding(tmp_path: Path) -> None:
    path = _series(tmp_path / "l.csv", ["1", "2", "3"], header="ts,coût", encoding="latin-1")
    scored = score_csv(path)
    assert scored.value_col == "coût" and len(scored.frame) == 3
    assert any("is not UTF-8 (byte 0xfb on line 1)" in n and "--encoding" in n for n in scored.notes)
    assert not any("UTF-8" in n for n in score_csv(path, encoding="latin-1").notes)
    with pytest.raises(HealthMonitorError, match="unknown encoding"):
        score_csv(path, encoding="klingon")
    frame, notes = read_daily_csv(path)
    assert len(frame) == 3 and any("not UTF-8" in n for n in notes)


@pytest.mark.parametrize(("exc", "expected"), [
    (PermissionError(errno.EACCES, "Permission denied", "/data/in.csv"), "/data/in.csv: permission denied; check"),
    (IsADirectoryError(errno.EISDIR, "Is a directory", "/tmp/out"), "/tmp/out: is a folder, not a file; give"),
    (OSError(errno.EROFS, "Read-only file system", "/ro/lake"), "/ro/lake: the file system is read-only"),
    (OSError(errno.ENOSPC, "No space left on device", "/full/x"), "/full/x: no space left on the device"),
    (FileNotFoundError(errno.ENOENT, "No such file", "/nope/x"), "/nope/x: no such file or folder"),
    (RuntimeError("py4j: java.nio.file.AccessDeniedException: /ro/lake/system/usage/_delta_log\n\tat ..."),
     "/ro/lake/system/usage/_delta_log: permission denied"),
    (RuntimeError("Mkdirs failed to create file:/ro/lake/monitor/alerts (exists=false)"),
     "/ro/lake/monitor/alerts: permission denied"),
    (RuntimeError("java.io.FileNotFoundException: /ro/x/part-0.parquet (Read-only file system)"),
     "/ro/x/part-0.parquet: the file system is read-only"),
    (RuntimeError("java.io.IOException: No space left on device"), "no space left on the device"),
    (RuntimeError("An error occurred while calling o122.save.\n: org.apache.spark.SparkException: Job aborted"
                  " ... java.io.FileNotFoundException: /lake/system/billing.usage/part-0.parquet (Operation not "
                  "permitted)\n\tat ..."), "/lake/system/billing.usage/part-0.parquet: operation not permitted"),
])
def test_environment_errors_become_one_sentence_with_the_path(exc: Exception, expected: str) -> None:
    err = environment_error(exc)
    assert err is not None and str(err).startswith(expected) and "\n" not in str(err)


def test_environment_error_found_through_the_cause_chain_and_not_invented() -> None:
    try:
        try:
            open("/nonexistent-hardening/x")  # noqa: SIM115, PTH123 - the real OSError
        except OSError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        assert str(environment_error(outer)).startswith("/nonexistent-hardening/x: no such file or folder")
    assert environment_error(ValueError("a bug, not the environment")) is None


def test_cli_output_path_that_is_a_folder_is_exit_2_naming_it(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    src = _series(tmp_path / "f.csv", [str(10 + i % 7) for i in range(28)])
    folder = tmp_path / "out"
    folder.mkdir()
    code = main(["--data-dir", str(tmp_path / "d"), "forecast", str(src), "--no-prophet", "--holidays", "none",
                 "--horizon", "3", "--output", str(folder)])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2
    assert err == f"error: {folder}: is a folder, not a file; give a file name inside it"
