"""The state function's fast frame conversions give what the pandas calls they replace give."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from health_monitor.streaming.scoring import _jsonable, numeric_frame, records
from health_monitor.streaming.windows.state import _flag, _flags


def _mixed() -> pd.DataFrame:
    return pd.DataFrame({
        "f": [1.5, np.nan, -0.0], "i": [1, 2, 3], "b": [True, False, True],
        "o": ["a", None, np.float64(2.5)], "n": [np.int64(4), None, np.bool_(True)],
        "t": pd.to_datetime(["2026-11-02 01:00", None, "2026-11-02 03:00"]), "z": pd.NaT,
    })


def _typed(rows: list[dict]) -> list:
    return [[(k, type(v).__name__, repr(v)) for k, v in r.items()] for r in rows]


def test_records_equal_to_dict_records_values_and_types() -> None:
    frame = _mixed()
    assert _typed(records(frame)) == _typed(frame.to_dict("records"))
    assert _typed(records(frame.iloc[-2:])) == _typed(frame.iloc[-2:].to_dict("records"))
    assert records(frame.iloc[:0]) == []
    # and the features JSON built from them is the same text
    as_json = [json.dumps({k: _jsonable(v) for k, v in r.items() if k not in ("t", "z")}) for r in records(frame)]
    assert as_json == [json.dumps({k: _jsonable(v) for k, v in r.items() if k not in ("t", "z")})
                       for r in frame.to_dict("records")]


@pytest.mark.parametrize("frame", [
    pd.DataFrame({"a": [1.0, np.nan], "b": [1, 2], "c": [True, False]}),
    pd.DataFrame({"a": [1.0, None], "b": ["3", "x"], "c": [None, 2.0]}, dtype=object),
])
def test_numeric_frame_equals_to_numeric_coerce(frame: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(numeric_frame(frame),
                                  frame.apply(pd.to_numeric, errors="coerce").astype(float))


@pytest.mark.parametrize("values", [
    [True, False, True], [True, None, False], [None, None], [np.bool_(True), None, False], [1.0, np.nan, 0.0],
])
def test_flags_equal_flag(values: list) -> None:
    s = pd.Series(values, index=[7, 3, 5][: len(values)])
    assert _flags(s).tolist() == _flag(s).tolist()
    assert _flags(s).dtype == bool
