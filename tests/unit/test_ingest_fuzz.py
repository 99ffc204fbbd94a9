"""A small run of bench/fuzz_ingest.py: corrupted rows of every system table's shape, in CSV and
JSON lines, are kept, quarantined or counted as duplicates; never a traceback, never lost."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "bench" / "fuzz_ingest.py"


def _fuzz():  # noqa: ANN202 - the bench module, loaded by path (bench/ is not a package)
    spec = importlib.util.spec_from_file_location("fuzz_ingest", _PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fuzz_ingest", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.mark.parametrize("seed", [3, 7])
def test_fuzzed_ingest_has_no_tracebacks_and_loses_no_row(seed: int, tmp_path: Path) -> None:
    tallies = _fuzz().run_fuzz(rows_per_table=40, seed=seed, folder=tmp_path)
    for fmt, t in tallies.items():
        assert t.tracebacks == 0, (fmt, t.traces[:1])
        assert t.files_refused == 0, (fmt, t.refusals[:1])
        assert t.lost == 0, fmt
        # The corruptions bite: both outcomes occur in every format.
        assert t.kept > 0 and t.quarantined > 0
        assert t.kept + t.quarantined + t.duplicates - t.delta == t.written
