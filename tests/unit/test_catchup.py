"""Catch-up mode's pure parts: the batch path's one call per key, and the handover to the stream.

The stream's state function runs for real here (pandas only): micro-batches are played with
:class:`BacklogState` as the GroupState, its watermark moved between calls as Spark would.
"""

from __future__ import annotations

import pandas as pd
import pytest
from test_window_features import CTX, _cost_rows

from health_monitor.features.windows import watermark_ms
from health_monitor.streaming import windows
from health_monitor.streaming.catchup import (
    HANDOVER,
    BacklogState,
    chunk_count,
    score_backlog_key,
    take_handover,
)
from health_monitor.streaming.scoring import make_state_function

KEY = ("workspace", "ws1")
COMPARED = ["window_start", "value", "expected", "score", "model_name", "features", "evidence"]


def _play(fn, state: BacklogState, batches: list[tuple[pd.DataFrame | None, int]]) -> pd.DataFrame:  # noqa: ANN001
    """Micro-batches of one key: (rows or None for a no-data/timeout call, the batch's watermark)."""
    out = []
    for rows, wm in batches:
        state.watermark_ms = wm
        out += list(fn(KEY, iter([] if rows is None else [rows]), state))
    frames = [f for f in out if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _scores(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["kind"] == "score"][COMPARED].reset_index(drop=True)


@pytest.fixture
def split() -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = _cost_rows()
    rows = rows[(rows["entity_type"] == KEY[0]) & (rows["entity_id"] == KEY[1])]
    seam = rows["event_time"].min() + pd.Timedelta(hours=70)  # inside the planted spike's day
    return rows[rows["event_time"] < seam], rows[rows["event_time"] >= seam]


def test_backlog_then_handover_scores_every_window_as_one_plain_stream(split) -> None:  # noqa: ANN001
    backlog, after = split
    w_backlog = watermark_ms("cost", backlog["event_time"].max())
    w_end = watermark_ms("cost", after["event_time"].max())
    fn = make_state_function("cost", CTX["cost"])

    # One plain stream: the backlog in batch 0 (no watermark yet), its timeout batch, then the rest.
    plain = _play(fn, BacklogState(0), [(backlog, 0), (None, w_backlog), (after, w_backlog), (None, w_end)])

    # Catch-up: the backlog in one call at its watermark, then a new stream whose first input
    # holds the handed-over state (event time = the backlog's newest) next to the new rows.
    done = score_backlog_key(fn, KEY, backlog, w_backlog)
    state_rows = done[done["kind"] == "state"]
    assert len(state_rows) == 1 and not done[done["kind"] != "state"]["state"].notna().any()
    handed = windows.KeyState.loads(state_rows["state"].iloc[0])
    assert handed.open, "windows after the backlog's watermark stay open and travel in the state"
    assert min(handed.open) + windows.HOUR_MS > w_backlog
    first = pd.concat([after.assign(**{HANDOVER: None}),
                       pd.DataFrame([{"entity_type": KEY[0], "entity_id": KEY[1],
                                      "event_time": backlog["event_time"].max(),
                                      HANDOVER: state_rows["state"].iloc[0]}])], ignore_index=True)
    stream = _play(fn, BacklogState(0), [(first, 0), (None, w_end)])

    got = pd.concat([_scores(done), _scores(stream)], ignore_index=True)
    want = _scores(plain)
    assert len(want) > 60 and want["score"].max() > 0.5, "the seam must cut through scored, anomalous windows"
    assert not got["window_start"].duplicated().any()
    pd.testing.assert_frame_equal(got, want)


def test_take_handover_passes_plain_input_through_and_loads_the_state_before_any_row(split) -> None:  # noqa: ANN001
    backlog, after = split
    chunks = [after.iloc[:5], after.iloc[5:]]
    handed, rest = take_handover(iter(chunks))
    assert handed is None and [len(c) for c in rest] == [5, len(after) - 5]
    assert take_handover(iter([]))[0] is None

    ks = windows.KeyState(*KEY, closed_until_ms=123)
    late = pd.DataFrame([{"entity_type": KEY[0], "entity_id": KEY[1], HANDOVER: ks.dumps()}])
    # The state arrives in the last chunk: rows of earlier chunks must still wait for it.
    handed, rest = take_handover(iter([after.assign(**{HANDOVER: None}), late]))
    assert handed is not None and handed.closed_until_ms == 123
    data = list(rest)
    assert sum(len(c) for c in data) == len(after) and all(HANDOVER not in c.columns for c in data)


def test_backlog_state_plays_group_state_and_chunks_cover_every_row() -> None:
    st = BacklogState(5)
    assert not st.exists and st.getCurrentWatermarkMs() == 5 and not st.hasTimedOut
    with pytest.raises(ValueError, match="not set"):
        _ = st.get
    st.update((b"x",))
    st.setTimeoutTimestamp(9)
    assert st.exists and st.get == (b"x",) and st.timeout_ms == 9
    st.remove()
    assert not st.exists
    assert [chunk_count(n, 10) for n in (0, 1, 10, 11, 95)] == [1, 1, 1, 2, 10]
