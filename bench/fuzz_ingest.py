"""Ingest fuzz: randomly corrupted rows of every system table's shape, parsed by ingest's own parser.

Why: ingest is the edge where hostile or careless exports enter the lakehouse. Whatever a row
holds (huge or tiny numbers, inf/NaN, impossible dates, broken JSON, stray quotes, truncated
lines, control characters, duplicates), it must be kept, quarantined with a reason, or counted
as a duplicate: never a traceback, and never silently lost.

For each table in ``system_schemas.SYSTEM_TABLES`` a CSV and a JSON-lines file are written with
valid rows, then cells and whole lines are corrupted at random; each file is parsed with
``_FileParser`` (validation only, no Spark: the Delta write is covered by tests/integration).

Reports per format: rows written, kept, quarantined, duplicates, files refused, tracebacks (must
be 0) and rows lost (must be 0): a row is lost when its token (``-r<i>z`` in every text cell), as
written in the corrupted file, is found neither in a kept row nor in the raw text of a quarantined
one. Counts are per parsed record, so ``delta`` (records accounted for minus rows written) is not 0
in CSV: a truncated line that leaves a quote open is quarantined alone and the lines after it are
read again on their own, and a broken multi-line record becomes several quarantined lines.

Run: ``.venv/bin/python bench/fuzz_ingest.py [--rows 200] [--seed 7] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
import re
import shutil
import sys
import tempfile
import traceback
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from pyspark.sql import types as T

from health_monitor.errors import HealthMonitorError
from health_monitor.gold.ddl import TableSpec
from health_monitor.gold.ingest import _FileParser, _RowValidator, enum_values
from health_monitor.gold.system_schemas import SYSTEM_TABLES

#: Cell values a careless or hostile export holds.
BAD_CELLS: list[Any] = [
    "12345678901234567890", "1e-30", "1e400", "-inf", "inf", "NaN", "", "null", " ", "9999-12-31T00:00:00",
    "0000-00-00", "2026-02-30T10:00:00", "1969-12-31T23:59:59Z", "not a value", "\u202e\x07\x1b[2J",
    "x" * 70_000, "{", "[1,", '{"a":', "true", "-1", str(2**70), "-" + str(2**70), "1e308", "1,5", "$12",
    "\ufeff1", "'; DROP TABLE x; --", "\r", "\n", '"', "\\", "é" * 10, "0x1F", "١٢٣",
]
#: JSON-only values of the wrong shape.
BAD_JSON: list[Any] = [2**80, -(2**80), 1e308, 1e-320, True, [], {}, [1, [2, [3]]], {"k": None}, None, 3.5]


def _valid(dt: T.DataType, i: int, col: str, enums: dict[str, set[str]], rng: random.Random) -> Any:
    """A value of ``dt`` the contract accepts (native Python, JSON-able)."""
    if col in enums:
        return sorted(enums[col])[i % len(enums[col])]
    if isinstance(dt, T.StringType):
        return f"{col}-r{i}z"  # the row's token: traces it through kept rows and quarantine text
    if isinstance(dt, T.LongType | T.IntegerType | T.ShortType | T.ByteType):
        return i % 100
    if isinstance(dt, T.DecimalType):
        return f"{rng.randint(0, 9999)}.{rng.randint(0, 99):02d}"
    if isinstance(dt, T.DoubleType | T.FloatType):
        return round(rng.random() * 100, 3)
    if isinstance(dt, T.BooleanType):
        return bool(i % 2)
    if isinstance(dt, T.TimestampType):
        return (datetime(2026, 3, 1) + timedelta(minutes=i)).isoformat() + "Z"
    if isinstance(dt, T.DateType):
        return (date(2026, 3, 1) + timedelta(days=i % 28)).isoformat()
    if isinstance(dt, T.MapType):
        return {"k": "v"} if isinstance(dt.valueType, T.StringType) else {}
    if isinstance(dt, T.ArrayType):
        return []
    if isinstance(dt, T.StructType):
        return {}
    return None


@dataclass
class Tally:
    """Counts of one format over all tables."""

    written: int = 0
    kept: int = 0
    quarantined: int = 0
    duplicates: int = 0
    files_refused: int = 0
    tracebacks: int = 0
    lost: int = 0
    delta: int = 0
    traces: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)


def _rows(spec: TableSpec, n: int, rng: random.Random, native: bool) -> list[dict[str, Any]]:
    enums = enum_values(spec)
    rows = []
    for i in range(n):
        row = {c.name: _valid(c.data_type, i, c.name, enums, rng) for c in spec.columns}
        if rng.random() < 0.5:
            for name in rng.sample(spec.column_names, k=min(len(spec.columns), rng.randint(1, 3))):
                pool = BAD_CELLS + (BAD_JSON if native else [])
                row[name] = rng.choice(pool)
        rows.append(row)
        if rng.random() < 0.03:
            rows.append(dict(row))  # an exact duplicate: counted, not lost
    return rows


def _cell(v: Any) -> Any:
    return json.dumps(v) if isinstance(v, dict | list) else v


def _corrupt_line(line: str, rng: random.Random, is_csv: bool) -> str:
    roll = rng.random()
    if roll < 0.03:
        return line[: rng.randint(1, max(len(line) - 1, 1))] + "\n"  # truncated (never to a blank line)
    if roll < 0.05:
        cut = rng.randint(0, len(line))
        return line[:cut] + rng.choice(["\x00", "\ufffd", "}", "]", ",", "\t"]) + line[cut:]
    if roll < 0.06 and not is_csv:
        return rng.choice(["[1, 2]", "42", '"text"', "null"]) + "\n"
    return line


def write_csv(path: Path, spec: TableSpec, rows: list[dict[str, Any]], rng: random.Random) -> int:
    """Write ``rows`` as CSV with some records corrupted; returns the number of data rows written."""
    def record(cells: list[Any]) -> str:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(cells)
        return buf.getvalue()

    # A record may span lines (a "\n" cell): corrupt whole records, not physical lines.
    out = [record(spec.column_names)]
    for r in rows:
        cells = [_cell(r[c]) if not isinstance(r[c], str) or r[c] else "" for c in spec.column_names]
        out.append(_corrupt_line(record(cells), rng, is_csv=True))
    path.write_text("".join(out), encoding="utf-8")
    return len(rows)


def write_jsonl(path: Path, rows: list[dict[str, Any]], rng: random.Random) -> int:
    """Write ``rows`` as JSON lines with some lines corrupted; returns the number of lines written."""
    text = "".join(_corrupt_line(json.dumps(r, default=str, allow_nan=True) + "\n", rng, is_csv=False)
                   for r in rows)
    path.write_text(text, encoding="utf-8")
    return len(rows)


_TOKEN = re.compile(r"-r(\d+)z")


def _tokens_found(parsed: Any) -> set[str]:  # noqa: ANN401 - ingest's private _Parsed
    found: set[str] = set()
    for batch in parsed.batches:
        for col in batch.columns:
            for v in col.to_pylist():
                if isinstance(v, str):
                    found.update(_TOKEN.findall(v))
    for _n, raw, _reason in parsed.quarantine:
        found.update(_TOKEN.findall(raw))
    return found


def run_fuzz(rows_per_table: int = 200, seed: int = 7, folder: Path | None = None,
             tables: list[str] | None = None) -> dict[str, Tally]:
    """Fuzz every system table (or ``tables``) in both text formats; returns a Tally per format."""
    from pyspark.sql.pandas.types import to_arrow_schema

    rng = random.Random(seed)
    own = folder is None
    folder = Path(tempfile.mkdtemp(prefix="fuzz-ingest-")) if folder is None else folder
    folder.mkdir(parents=True, exist_ok=True)
    tallies = {"csv": Tally(), "json": Tally()}
    try:
        for name in tables or sorted(SYSTEM_TABLES):
            spec = SYSTEM_TABLES[name]
            schema = to_arrow_schema(T.StructType([*spec.schema.fields, T.StructField("_file", T.IntegerType())]))
            for fmt in ("csv", "json"):
                tally = tallies[fmt]
                path = folder / f"{name}.{'csv' if fmt == 'csv' else 'jsonl'}"
                rows = _rows(spec, rows_per_table, rng, native=fmt == "json")
                n = write_csv(path, spec, rows, rng) if fmt == "csv" else write_jsonl(path, rows, rng)
                tally.written += n
                try:
                    parsed = _FileParser(spec, _RowValidator(spec), schema, set(), 0, path, fmt).parse()
                except HealthMonitorError as exc:
                    tally.files_refused += 1
                    tally.lost += n
                    tally.refusals.append(f"{name} {fmt}: {exc}")
                    continue
                except Exception:  # noqa: BLE001 - counting them is the point
                    tally.tracebacks += 1
                    tally.lost += n
                    tally.traces.append(f"{name} {fmt}:\n{traceback.format_exc()}")
                    continue
                rep = parsed.report
                tally.kept += parsed.good
                tally.quarantined += rep.quarantined
                tally.duplicates += rep.duplicates_skipped
                tally.delta += parsed.good + rep.quarantined + rep.duplicates_skipped - n
                # Tokens of the file as written (after corruption): what the parser was given.
                # A row skipped as a duplicate of its key is accounted for but stored nowhere, and a
                # quarantined row's raw text is capped (a 70,000-character cell): each may explain
                # one untraced token.
                untraced = set(_TOKEN.findall(path.read_text(encoding="utf-8"))) - _tokens_found(parsed)
                capped = sum(1 for _n, raw, _r in parsed.quarantine if raw.endswith("more characters]"))
                tally.lost += max(0, len(untraced) - rep.duplicates_skipped - capped)
    finally:
        if own:
            shutil.rmtree(folder, ignore_errors=True)
    return tallies


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200, help="rows per table and format (default 200)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", type=Path, help="write the corrupted files here and keep them")
    args = ap.parse_args()
    tallies = run_fuzz(args.rows, args.seed, args.keep)
    print(f"{'format':<7} {'written':>8} {'kept':>8} {'quarantined':>11} {'duplicates':>10} {'delta':>6} "
          f"{'refused':>7} {'tracebacks':>10} {'lost':>5}")
    for fmt, t in tallies.items():
        print(f"{fmt:<7} {t.written:>8,} {t.kept:>8,} {t.quarantined:>11,} {t.duplicates:>10,} {t.delta:>6,} "
              f"{t.files_refused:>7} {t.tracebacks:>10} {t.lost:>5}")
        for line in t.refusals + t.traces:
            print(f"  {line}")
    return 0 if all(t.tracebacks == 0 and t.lost == 0 for t in tallies.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
